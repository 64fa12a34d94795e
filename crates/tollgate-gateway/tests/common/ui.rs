//! The dashboard as a browser uses it: signing in through the form, then pages with the session
//! cookie.

use super::Gw;

/// A client that does not follow redirects (the tests check where they lead).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `key` through the form; the session's `cookie: name=value`.
pub async fn sign_in(gw: &Gw, key: &str) -> String {
    let http = client();
    let form = http.get(format!("{}/ui/signin", gw.base)).send().await.unwrap();
    let bound = cookie(&form, "tollgate_signin").expect("the sign-in form's cookie");
    let html = form.text().await.unwrap();
    let marker = r#"name="csrf" value=""#;
    let at = html.find(marker).expect("a csrf field") + marker.len();
    let token = html[at..].split('"').next().unwrap().to_string();
    let resp = http
        .post(format!("{}/ui/signin", gw.base))
        .header("cookie", &bound)
        .form(&[("key", key), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "sign-in with {key}");
    cookie(&resp, "tollgate_session").expect("a session cookie")
}

/// `GET path` with the session: the status and the page.
pub async fn page(gw: &Gw, session: &str, path: &str) -> (u16, String) {
    let resp = client()
        .get(format!("{}{path}", gw.base))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The request ids a log page lists, in its order.
pub fn listed(html: &str) -> Vec<String> {
    html.split(r#"data-request-id=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

fn cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}
