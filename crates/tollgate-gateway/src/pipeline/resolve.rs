//! Stage 4, resolve: what the client's `model` names on this endpoint — a model group or a
//! workflow, or several model groups (`"gpt-4o,claude-sonnet"`, LiteLLM's comma list: asked at
//! once, the first answer wins, `pipeline/race.rs`) — or 404 listing the known names.

use tollgate_core::{ErrorKind, GatewayError};

use crate::body::ArrayShape;
use crate::pipeline::endpoint::Endpoint;
use crate::pipeline::parse::Request;
use crate::state::{LiveState, Target};

/// The most groups one comma list may name: each is a concurrent upstream call.
const MAX_LISTED: usize = 8;

/// What `model` names: one target, or (a comma list) two or more distinct model groups, in the
/// client's order.
pub fn targets<'a>(
    live: &'a LiveState,
    endpoint: Endpoint,
    request: &Request,
) -> Result<Vec<Target<'a>>, GatewayError> {
    let listed: Vec<&str> = request.model.split(',').map(str::trim).collect();
    // A configured name that happens to hold a comma is still that name.
    if listed.len() < 2 || lookup(live, endpoint, &request.model).is_some() {
        return target(live, endpoint, request).map(|t| vec![t]);
    }
    if listed.len() > MAX_LISTED {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            format!(
                "`model` lists {} models; at most {MAX_LISTED} may be asked at once",
                listed.len()
            ),
        )
        .with_param("model"));
    }
    let mut out: Vec<Target<'a>> = Vec::new();
    for name in listed {
        match lookup(live, endpoint, name) {
            Some(t @ Target::Group(_)) => {
                if !out.iter().any(|o| o.name() == t.name()) {
                    out.push(t);
                }
            }
            Some(Target::Workflow(w)) => {
                return Err(GatewayError::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "`{}` is a workflow: a comma list of models names model groups only",
                        w.name
                    ),
                )
                .with_param("model"));
            }
            None => return Err(not_found(live, name)),
        }
    }
    check_messages(endpoint, request)?;
    Ok(out)
}

fn lookup<'a>(live: &'a LiveState, endpoint: Endpoint, name: &str) -> Option<Target<'a>> {
    match live.target(name) {
        Some(Target::Workflow(_)) if !endpoint.runs_workflows => None,
        t => t,
    }
}

fn not_found(live: &LiveState, name: &str) -> GatewayError {
    let known = live.model_names().join(", ");
    // A group whose every deployment was skipped at load says why, not just "unknown".
    let why = match live.unserved.iter().find(|u| u.model_name == name) {
        Some(u) => format!(" (its deployment `{}` is skipped: {})", u.model, u.reason),
        None => String::new(),
    };
    GatewayError::new(
        ErrorKind::NotFound,
        format!("model `{name}` is not served by this gateway{why}; known models: {known}"),
    )
    .with_code("model_not_found")
    .with_param("model")
}

pub fn target<'a>(live: &'a LiveState, endpoint: Endpoint, request: &Request) -> Result<Target<'a>, GatewayError> {
    let Some(target) = lookup(live, endpoint, &request.model) else {
        return Err(not_found(live, &request.model));
    };
    check_messages(endpoint, request)?;
    Ok(target)
}

/// Every provider refuses an empty conversation; answering here saves a round trip and keeps
/// the refusal from looking like a deployment's failure.
fn check_messages(endpoint: Endpoint, request: &Request) -> Result<(), GatewayError> {
    if endpoint.needs_messages && request.body.array("messages") == Some(ArrayShape::Empty) {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "`messages` is empty: a chat request needs at least one message",
        )
        .with_param("messages"));
    }
    Ok(())
}
