//! Team membership, kept in three places as LiteLLM keeps it: the team's `members_with_roles`,
//! the user's `teams`, and a membership row (`<team_id>/<user_id>`, parent = the team) with the
//! member's role and budget in the team (`max_budget` is LiteLLM's `max_budget_in_team`).
//! Team creation, the member endpoints and user and team deletion all change membership through
//! these functions, so the three never disagree.

use std::collections::HashSet;

use serde_json::{Map, Value, json};
use tollgate_store::{EntityKind, EntityRow};

use crate::app::App;
use crate::entity_api::fields::new_id;
use crate::entity_api::rows;
use crate::mgmt::ApiError;

/// A member as a request names it: by user id or email, with a role in the team.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub role: String,
}

const ROLES: [&str; 2] = ["admin", "user"];

/// `{"user_id"|"user_email", "role"}`, or a list of them (`member`, `members_with_roles`).
pub(super) fn members_in(v: &Value, param: &'static str) -> Result<Vec<Member>, ApiError> {
    let one = |v: &Value| -> Result<Member, ApiError> {
        let help = "{\"user_id\": \"…\" or \"user_email\": \"…\", \"role\": \"admin\" | \"user\"}";
        let m = v
            .as_object()
            .ok_or_else(|| ApiError::bad(format!("each member in `{param}` must be {help}, got {v}"), Some(param)))?;
        let text = |k: &str| -> Result<Option<String>, ApiError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(ApiError::bad(
                    format!("a member's `{k}` in `{param}` must be a string, got {other}"),
                    Some(param),
                )),
            }
        };
        let (user_id, user_email) = (text("user_id")?, text("user_email")?);
        if user_id.is_none() && user_email.is_none() {
            return Err(ApiError::bad(
                format!("a member in `{param}` needs a user_id or a user_email: {help}"),
                Some(param),
            ));
        }
        // LiteLLM's Member requires the role; it is one of two.
        let role = text("role")?.filter(|r| ROLES.contains(&r.as_str())).ok_or_else(|| {
            ApiError::bad(
                format!("a member's `role` in `{param}` must be \"admin\" or \"user\": {help}"),
                Some(param),
            )
        })?;
        Ok(Member {
            user_id,
            user_email,
            role,
        })
    };
    let members = match v {
        Value::Array(items) => items.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        other => vec![one(other)?],
    };
    let mut seen = HashSet::new();
    if let Some(dup) = members
        .iter()
        .filter_map(|w| w.user_id.as_ref().or(w.user_email.as_ref()))
        .find(|u| !seen.insert(*u))
    {
        return Err(ApiError::bad(
            format!("`{dup}` is listed twice in `{param}`"),
            Some(param),
        ));
    }
    Ok(members)
}

/// The membership row's id.
pub(super) fn membership_id(team_id: &str, user_id: &str) -> String {
    format!("{team_id}/{user_id}")
}

/// The team's `members_with_roles`.
pub(super) fn members(team: &EntityRow) -> Vec<Map<String, Value>> {
    team.doc
        .get("members_with_roles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.as_object().cloned()).collect())
        .unwrap_or_default()
}

fn set_members(team: &mut EntityRow, members: Vec<Map<String, Value>>) {
    team.doc.insert(
        "members_with_roles".into(),
        Value::Array(members.into_iter().map(Value::Object).collect()),
    );
}

/// The user id of the team member a request names (by id, or by email among the members).
pub(super) fn member_id(team: &EntityRow, user_id: Option<&str>, user_email: Option<&str>) -> Option<String> {
    members(team).iter().find_map(|m| {
        let id = m.get("user_id").and_then(Value::as_str);
        let email = m.get("user_email").and_then(Value::as_str);
        let hit = match (user_id, user_email) {
            (Some(u), _) => id == Some(u),
            (None, Some(e)) => email == Some(e),
            (None, None) => false,
        };
        hit.then(|| id.map(str::to_string)).flatten()
    })
}

/// Adds a member to `team` (in memory: the caller saves the team): finds the user by id or
/// email, or makes one as LiteLLM does; adds the team to the user's `teams`; writes the
/// membership row with `budget` (`max_budget`, `budget_duration`, `budget_id`). Returns the
/// user and membership rows.
pub(super) async fn add(
    app: &App,
    team: &mut EntityRow,
    member: &Member,
    budget: &Map<String, Value>,
) -> Result<(EntityRow, EntityRow), ApiError> {
    let found = match (&member.user_id, &member.user_email) {
        (Some(id), _) => rows::get(app, EntityKind::User, id).await?,
        (None, Some(email)) => rows::user_by_email(app, email).await?,
        (None, None) => None,
    };
    let user_id = found
        .as_ref()
        .map(|u| u.id.clone())
        .or_else(|| member.user_id.clone())
        .unwrap_or_else(new_id);
    if member_id(team, Some(&user_id), None).is_some() {
        return Err(ApiError::bad(
            format!(
                "user `{user_id}` is already in team `{}`; change a member with POST /team/member_update",
                team.id
            ),
            Some("member"),
        ));
    }
    let user = match found {
        Some(mut user) => {
            let mut teams = user_teams(&user);
            if !teams.contains(&team.id) {
                teams.push(team.id.clone());
                user.doc.insert("teams".into(), json!(teams));
                rows::save(app, &user).await?;
            }
            user
        }
        None => {
            let mut doc = Map::new();
            doc.insert("user_id".into(), json!(user_id));
            if let Some(e) = &member.user_email {
                doc.insert("user_email".into(), json!(e));
            }
            doc.insert("user_role".into(), json!("internal_user"));
            doc.insert("teams".into(), json!([team.id]));
            rows::create(app, EntityRow::new(EntityKind::User, &user_id, doc), "member").await?
        }
    };
    let mut doc = Map::new();
    doc.insert("team_id".into(), json!(team.id));
    doc.insert("user_id".into(), json!(user_id));
    doc.insert("role".into(), json!(member.role));
    for (k, v) in budget {
        if !v.is_null() {
            doc.insert(k.clone(), v.clone());
        }
    }
    let mut membership = EntityRow::new(EntityKind::TeamMember, membership_id(&team.id, &user_id), doc);
    membership.parent = Some(team.id.clone());
    // A row left from an earlier membership (an import) is replaced.
    if rows::get(app, EntityKind::TeamMember, &membership.id).await?.is_some() {
        rows::save(app, &membership).await?;
    } else {
        membership = rows::create(app, membership, "member").await?;
    }
    let mut list = members(team);
    let mut entry = Map::new();
    entry.insert("user_id".into(), json!(user_id));
    entry.insert(
        "user_email".into(),
        json!(
            member
                .user_email
                .clone()
                .or_else(|| user.str("user_email").map(str::to_string))
        ),
    );
    entry.insert("role".into(), json!(member.role));
    list.push(entry);
    set_members(team, list);
    Ok((user, membership))
}

/// Removes a member from `team` (in memory: the caller saves the team), deletes the membership
/// row and takes the team out of the user's `teams`.
pub(super) async fn remove(app: &App, team: &mut EntityRow, user_id: &str) -> Result<(), ApiError> {
    let list: Vec<_> = members(team)
        .into_iter()
        .filter(|m| m.get("user_id").and_then(Value::as_str) != Some(user_id))
        .collect();
    set_members(team, list);
    rows::remove(app, EntityKind::TeamMember, vec![membership_id(&team.id, user_id)]).await?;
    leave(app, user_id, &team.id).await
}

/// Takes a team out of a user's `teams` (the user may be gone already).
pub(super) async fn leave(app: &App, user_id: &str, team_id: &str) -> Result<(), ApiError> {
    if let Some(mut user) = rows::get(app, EntityKind::User, user_id).await? {
        let teams = user_teams(&user);
        if teams.iter().any(|t| t == team_id) {
            let kept: Vec<&String> = teams.iter().filter(|t| *t != team_id).collect();
            user.doc.insert("teams".into(), json!(kept));
            rows::save(app, &user).await?;
        }
    }
    Ok(())
}

/// The teams a user is in.
pub(super) fn user_teams(user: &EntityRow) -> Vec<String> {
    user.doc
        .get("teams")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_one_or_a_list_with_an_id_or_email_and_a_role() {
        let ok = members_in(&json!({"user_id": "ada", "role": "admin"}), "member").unwrap();
        assert_eq!((ok[0].user_id.as_deref(), ok[0].role.as_str()), (Some("ada"), "admin"));
        let two = members_in(
            &json!([{"user_email": "b@x", "role": "user"}, {"user_id": "c", "role": "user"}]),
            "member",
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        for bad in [
            json!({"role": "user"}),
            json!({"user_id": "a"}),
            json!({"user_id": "a", "role": "owner"}),
            json!("ada"),
            json!({"user_id": 7, "role": "user"}),
            json!([{"user_id": "a", "role": "user"}, {"user_id": "a", "role": "admin"}]),
        ] {
            assert!(members_in(&bad, "member").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_member_is_found_by_id_or_email() {
        let mut team = EntityRow::new(EntityKind::Team, "t", Map::new());
        set_members(
            &mut team,
            vec![
                json!({"user_id": "ada", "user_email": "a@x", "role": "user"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ],
        );
        assert_eq!(member_id(&team, Some("ada"), None).as_deref(), Some("ada"));
        assert_eq!(member_id(&team, None, Some("a@x")).as_deref(), Some("ada"));
        assert_eq!(member_id(&team, Some("bob"), Some("a@x")), None);
    }
}
