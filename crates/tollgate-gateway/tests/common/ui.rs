//! The dashboard as a browser uses it: signing in through the form, then pages with the session
//! cookie (asked again while a page says its report is being computed, as its reload does).

use std::time::Duration;

use super::Gw;

/// A client that does not follow redirects (the tests check where they lead).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of the `Set-Cookie` for `name`, and the whole header.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap().to_string(), v.to_string()))
}

/// The value of the first hidden `csrf` field on a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf field") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_string()
}

pub struct Signed {
    pub cookie: String,
    pub csrf: String,
}

/// Signs in with `key` through the form; the session cookie and the pages' CSRF token.
pub async fn sign_in(gw: &Gw, key: &str) -> Signed {
    let http = client();
    let form = http.get(format!("{}/ui/signin", gw.base)).send().await.unwrap();
    let (bound, _) = set_cookie(&form, "tollgate_signin").unwrap();
    let token = csrf_of(&form.text().await.unwrap());
    let resp = http
        .post(format!("{}/ui/signin", gw.base))
        .header("cookie", &bound)
        .form(&[("key", key), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "sign-in with {key}");
    assert_eq!(resp.headers()["location"], "/ui/overview");
    let (cookie, _) = set_cookie(&resp, "tollgate_session").unwrap();
    let page = get(gw, &cookie, "/ui/overview").await;
    assert_eq!(page.0, 200, "{}", page.1);
    Signed {
        cookie,
        csrf: csrf_of(&page.1),
    }
}

/// A page, as a browser ends up showing it: while the report behind it is still being computed
/// the page says so and reloads itself each second (`data-building`), so this asks again.
pub async fn get(gw: &Gw, cookie: &str, path: &str) -> (u16, String) {
    for _ in 0..100 {
        let resp = client()
            .get(format!("{}{path}", gw.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let answer = (resp.status().as_u16(), resp.text().await.unwrap());
        if !answer.1.contains(r#"data-building="true""#) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path}: the report was still being computed after 10 s");
}

pub async fn post(gw: &Gw, cookie: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let resp = client()
        .post(format!("{}{path}", gw.base))
        .header("cookie", cookie)
        .form(form)
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
