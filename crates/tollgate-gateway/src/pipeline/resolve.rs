//! Stage 4, resolve: what the client's `model` names on this endpoint — a model group or a
//! workflow — or 404 listing the known names.

use tollgate_core::{ErrorKind, GatewayError};

use crate::body::ArrayShape;
use crate::pipeline::endpoint::Endpoint;
use crate::pipeline::parse::Request;
use crate::state::{LiveState, Target};

pub fn target<'a>(live: &'a LiveState, endpoint: Endpoint, request: &Request) -> Result<Target<'a>, GatewayError> {
    let target = match live.target(&request.model) {
        Some(Target::Workflow(_)) if !endpoint.runs_workflows => None,
        t => t,
    };
    let Some(target) = target else {
        let known = live.model_names().join(", ");
        return Err(GatewayError::new(
            ErrorKind::NotFound,
            format!(
                "model `{}` is not served by this gateway; known models: {known}",
                request.model
            ),
        )
        .with_code("model_not_found")
        .with_param("model"));
    };
    // Every provider refuses an empty conversation; answering here saves a round trip and keeps
    // the refusal from looking like a deployment's failure.
    if endpoint.needs_messages && request.body.array("messages") == Some(ArrayShape::Empty) {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "`messages` is empty: a chat request needs at least one message",
        )
        .with_param("messages"));
    }
    Ok(target)
}
