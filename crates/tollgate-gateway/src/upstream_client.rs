//! The HTTP client of upstream calls: hyper-util's pooled client over rustls, behind the
//! proxies the environment names.
//!
//! It replaces reqwest on the request path. reqwest wrapped the same hyper-util client in tower
//! layers (a redirect layer that parsed each request's URL again, a retry policy) and turned its
//! `Url` into a `Uri` on every request: 8.6 % of a plain request's instructions
//! (`bench/instructions.sh`, bench/notes.md session 12). What reqwest did that a gateway must
//! keep is kept:
//! - `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case), read once at start
//!   as curl, httpx (LiteLLM) and reqwest read them: https upstreams through a CONNECT tunnel,
//!   http upstreams sent to the proxy in absolute form, credentials in the proxy URL sent as
//!   `proxy-authorization`;
//! - TLS with Mozilla's roots (webpki-roots) and HTTP/2 where the upstream offers it (ALPN);
//! - pooled keep-alive connections, no Nagle delay, a 10 s connect timeout;
//! - redirects followed, up to 10, as LiteLLM's httpx follows them; credentials are not sent
//!   on to another origin.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http::header::{ACCEPT, AUTHORIZATION, HeaderName, HeaderValue, PROXY_AUTHORIZATION};
use http::uri::Scheme;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower::{Service, ServiceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the buffers it is sent from, in order, without being joined.
pub type Segments = bytes_utils::SegmentedBuf<Bytes>;
type Pool = hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<ProxyConnector>, Full<Segments>>;

/// A pooled upstream client. Cheap to clone (reference counts).
#[derive(Clone)]
pub struct Client {
    pool: Pool,
    proxies: Arc<Proxies>,
}

/// The environment's proxies, and whether any applies to `http://` upstreams (only those
/// requests carry the proxy's credentials themselves; a tunnel carries them on its CONNECT).
struct Proxies {
    matcher: Matcher,
    for_http: bool,
}

impl Client {
    /// The client for the proxies the environment names.
    pub fn new() -> Result<Client, Error> {
        let for_http = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        Client::with_proxies(Matcher::from_env(), for_http)
    }

    /// The client for the proxies `matcher` names (`for_http`: whether it may intercept
    /// `http://` upstreams).
    fn with_proxies(matcher: Matcher, for_http: bool) -> Result<Client, Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let proxies = Arc::new(Proxies { matcher, for_http });
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| Error::new(Kind::Build, e))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(ProxyConnector {
                http,
                proxies: Arc::clone(&proxies),
            });
        let pool = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .build(tls);
        Ok(Client { pool, proxies })
    }

    pub fn post<U>(&self, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: Into<http::Error>,
    {
        self.request(Method::POST, uri)
    }

    pub fn get<U>(&self, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: Into<http::Error>,
    {
        self.request(Method::GET, uri)
    }

    fn request<U>(&self, method: Method, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: Into<http::Error>,
    {
        let head = Uri::try_from(uri)
            .map_err(|e| Error::new(Kind::Build, e.into()))
            .and_then(|uri| {
                let mut headers = HeaderMap::new();
                let uri = match split_credentials(&uri)? {
                    Some((bare, auth)) => {
                        headers.append(AUTHORIZATION, auth);
                        bare
                    }
                    None => uri,
                };
                Ok(Head { method, uri, headers })
            });
        RequestBuilder {
            client: self.clone(),
            head,
            body: Segments::new(),
        }
    }
}

/// `uri` checked as a URL the way the config's URLs are (the `url` crate: the WHATWG rules
/// httpx and reqwest use), in the form the client sends.
pub fn parse_uri(s: &str) -> Result<Uri, String> {
    let url = url::Url::parse(s).map_err(|e| e.to_string())?;
    Uri::try_from(url.as_str()).map_err(|e| e.to_string())
}

/// A URL's `user:password@` taken out and made an `authorization: Basic` header, as reqwest and
/// httpx send it (hyper would drop it). `None` when the URL has none: the usual case, found by
/// one look at the authority.
fn split_credentials(uri: &Uri) -> Result<Option<(Uri, HeaderValue)>, Error> {
    use base64::Engine;
    use percent_encoding::percent_decode_str;

    let Some((userinfo, host)) = uri.authority().and_then(|a| a.as_str().rsplit_once('@')) else {
        return Ok(None);
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", decode(user), decode(password)));
    let mut auth = HeaderValue::try_from(format!("Basic {token}")).map_err(|e| Error::new(Kind::Build, e))?;
    auth.set_sensitive(true);
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(
        host.parse()
            .map_err(|e: http::uri::InvalidUri| Error::new(Kind::Build, e))?,
    );
    let bare = Uri::from_parts(parts).map_err(|e| Error::new(Kind::Build, e))?;
    Ok(Some((bare, auth)))
}

/// One upstream request being built. An invalid header is kept as the error `send` returns, as
/// reqwest did, so building never panics and never fails halfway.
pub struct RequestBuilder {
    client: Client,
    head: Result<Head, Error>,
    body: Segments,
}

/// What a request is sent again with when its upstream redirects it.
struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// Redirects followed before the last one is answered as it is (reqwest's and httpx's limit is
/// 10 and 20; LiteLLM and the OpenAI SDK follow them).
const MAX_REDIRECTS: usize = 10;

/// The headers that carry an upstream's credentials: not sent on to another origin.
const CREDENTIALS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
];

impl RequestBuilder {
    pub fn header<K, V>(mut self, name: K, value: V) -> RequestBuilder
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        if let Ok(head) = &mut self.head {
            let name = HeaderName::try_from(name).map_err(Into::into);
            let value = HeaderValue::try_from(value).map_err(Into::into);
            match name.and_then(|n| Ok((n, value?))) {
                Ok((n, v)) => {
                    head.headers.append(n, v);
                }
                Err(e) => self.head = Err(Error::new(Kind::Build, e)),
            }
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> RequestBuilder {
        self.body = Segments::new();
        self.body.push(body.into());
        self
    }

    /// The body as segments sent in order without being joined (hyper writes them with one
    /// `writev`): a client's prompt goes out from the buffer it arrived in.
    pub fn segments(mut self, body: Segments) -> RequestBuilder {
        self.body = body;
        self
    }

    /// Sends the request, following redirects as LiteLLM's httpx does; done when the answer's
    /// head has arrived.
    pub async fn send(self) -> Result<Response, Error> {
        let mut head = self.head?;
        if !head.headers.contains_key(ACCEPT) {
            head.headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        let mut body = self.body;
        let mut hops = 0;
        loop {
            let response = self
                .client
                .pool
                .request(self.client.request_for(&head, &body))
                .await
                .map_err(|e| Error::new(Kind::Send, e))?;
            if hops == MAX_REDIRECTS || !redirect(&mut head, &mut body, &response) {
                return Ok(Response { inner: response });
            }
            hops += 1;
        }
    }
}

impl Client {
    /// One hop's request. The head is copied (≈ 1.5k instructions, callgrind) so a redirect can
    /// send it again; an http upstream behind a proxy gets the proxy's credentials.
    fn request_for(&self, head: &Head, body: &Segments) -> Request<Full<Segments>> {
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = head.uri.clone();
        *request.headers_mut() = head.headers.clone();
        if self.proxies.for_http
            && head.uri.scheme() == Some(&Scheme::HTTP)
            && let Some(auth) = self
                .proxies
                .matcher
                .intercept(&head.uri)
                .and_then(|p| p.basic_auth().cloned())
        {
            request.headers_mut().insert(PROXY_AUTHORIZATION, auth);
        }
        request
    }
}

/// Turns `head` and `body` into the request `response` redirects to, as browsers, httpx and
/// reqwest do: 301, 302 and 303 become a GET without a body, 307 and 308 are sent again as they
/// were. Credentials are not sent on to another origin. False when `response` is not a redirect
/// to follow (or its `location` is unusable): it is then the answer.
fn redirect(head: &mut Head, body: &mut Segments, response: &http::Response<Incoming>) -> bool {
    let status = response.status().as_u16();
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return false;
    }
    let Some(next) = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url::Url::parse(&head.uri.to_string()).ok()?.join(l).ok())
        .and_then(|u| parse_uri(u.as_str()).ok())
    else {
        return false;
    };
    if status <= 303 && head.method != Method::HEAD {
        head.method = Method::GET;
        *body = Segments::new();
        for h in [
            "content-type",
            "content-length",
            "content-encoding",
            "transfer-encoding",
        ] {
            head.headers.remove(h);
        }
    }
    let origin = |u: &Uri| (u.scheme().cloned(), u.host().map(str::to_ascii_lowercase), u.port_u16());
    if origin(&next) != origin(&head.uri) {
        for h in CREDENTIALS {
            head.headers.remove(h);
        }
    }
    head.uri = next;
    true
}

/// An upstream's answer: its head, and its body still to be read.
pub struct Response {
    inner: http::Response<Incoming>,
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, Error> {
        let body = self
            .inner
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::new(Kind::Body, e))?;
        Ok(body.to_bytes())
    }

    /// The body as it arrives.
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
        BodyDataStream::new(self.inner.into_body()).map_err(|e| Error::new(Kind::Body, e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Build,
    Send,
    Body,
}

/// A failed upstream call. Its message names the step; its causes (`source`) say why.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    source: BoxError,
}

impl Error {
    fn new(kind: Kind, source: impl Into<BoxError>) -> Error {
        Error {
            kind,
            source: source.into(),
        }
    }

    /// Whether a timeout (connecting, or the OS's own) caused it.
    pub fn is_timeout(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&*self.source);
        while let Some(e) = cur {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

/// The step, then its causes.
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let step = match self.kind {
            Kind::Build => "cannot build the upstream request",
            Kind::Send => "error sending request",
            Kind::Body => "error reading the upstream's answer",
        };
        write!(f, "{step}: {}", error_chain(&*self.source))
    }
}

/// An error and its causes, each said once: hyper and the OS often repeat their cause in their
/// own message, which would print "connection refused" two or three times.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Connects to an upstream directly, through a CONNECT tunnel (https upstreams behind a proxy),
/// or to the proxy itself (http upstreams behind one, sent in absolute form). TLS to the upstream
/// is added on top by hyper-rustls.
#[derive(Clone)]
struct ProxyConnector {
    http: HttpConnector,
    proxies: Arc<Proxies>,
}

impl Service<Uri> for ProxyConnector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // An HttpConnector is always ready; each call clones it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let http = self.http.clone();
        let proxy = self.proxies.matcher.intercept(&dst);
        Box::pin(async move {
            let Some(proxy) = proxy else {
                return Ok(Conn::direct(http.oneshot(dst).await?));
            };
            if proxy.uri().scheme() != Some(&Scheme::HTTP) {
                return Err(format!(
                    "the proxy `{}` is not an http:// proxy; tollgate reaches upstreams through http:// proxies only",
                    tollgate_core::redact::url(&proxy.uri().to_string())
                )
                .into());
            }
            if dst.scheme() == Some(&Scheme::HTTPS) {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), http);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                return Ok(Conn::direct(tunnel.oneshot(dst).await?));
            }
            let io = http.oneshot(proxy.uri().clone()).await?;
            Ok(Conn { io, proxied: true })
        })
    }
}

/// A connection, marked when it goes to an http proxy (hyper then sends the request's absolute
/// URI, which the proxy needs, instead of its path).
struct Conn {
    io: TokioIo<tokio::net::TcpStream>,
    proxied: bool,
}

impl Conn {
    fn direct(io: TokioIo<tokio::net::TcpStream>) -> Conn {
        Conn { io, proxied: false }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-connection server that keeps the head of the first request it gets and answers
    /// `reply`. Returns its address and the head, when it has come.
    async fn fake(reply: impl Into<String>) -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<String>) {
        let reply = reply.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(String::from_utf8_lossy(&head).to_ascii_lowercase());
            sock.write_all(reply.as_bytes()).await.unwrap();
            // Held open until the client is done with it.
            let _ = sock.read(&mut buf).await;
        });
        (addr, rx)
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn error_chain_says_each_cause_once() {
        let e = Layer(
            "error sending request: connection refused",
            Some(Box::new(Layer(
                "client error (Connect)",
                Some(Box::new(Layer("connection refused", None))),
            ))),
        );
        let text = error_chain(&e);
        assert_eq!(text.matches("connection refused").count(), 1, "{text}");
        assert!(text.contains("client error (Connect)"), "{text}");
    }

    /// A client with no proxy configured.
    fn direct() -> Client {
        Client::with_proxies(Matcher::builder().build(), false).unwrap()
    }

    /// A JSON POST of `{}` to `uri`, as a chat call sends one.
    fn chat<U>(client: &Client, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: Into<http::Error>,
    {
        client.post(uri).header("content-type", "application/json").body("{}")
    }

    /// A fake upstream answering `status` with a redirect to `location`.
    async fn redirecting(
        status: &str,
        location: String,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<String>) {
        fake(format!(
            "HTTP/1.1 {status}\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n"
        ))
        .await
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    #[tokio::test]
    async fn an_http_upstream_behind_a_proxy_is_asked_for_in_absolute_form_with_the_proxys_credentials() {
        let (proxy, head) = fake(OK).await;
        let matcher = Matcher::builder().http(format!("http://user:pass@{proxy}")).build();
        let client = Client::with_proxies(matcher, true).unwrap();
        let resp = chat(&client, "http://upstream.invalid/v1/chat/completions")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap(), "ok");
        let head = head.await.unwrap();
        assert!(
            head.starts_with("post http://upstream.invalid/v1/chat/completions http/1.1\r\n"),
            "{head}"
        );
        // base64("user:pass")
        assert!(head.contains("proxy-authorization: basic dxnlcjpwyxnz\r\n"), "{head}");
        assert!(head.contains("content-length: 2\r\n"), "{head}");
    }

    #[tokio::test]
    async fn an_https_upstream_behind_a_proxy_is_reached_through_a_connect_tunnel() {
        let (proxy, head) = fake("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n").await;
        let matcher = Matcher::builder().https(format!("http://user:pass@{proxy}")).build();
        let client = Client::with_proxies(matcher, false).unwrap();
        let err = client
            .post("https://upstream.invalid/v1/chat/completions")
            .body("{}")
            .send()
            .await
            .err()
            .expect("the proxy refused the tunnel");
        let head = head.await.unwrap();
        assert!(head.starts_with("connect upstream.invalid:443 http/1.1\r\n"), "{head}");
        assert!(head.contains("proxy-authorization: basic dxnlcjpwyxnz\r\n"), "{head}");
        assert!(err.to_string().contains("error sending request"), "{err}");
    }

    #[tokio::test]
    async fn hosts_no_proxy_names_are_reached_directly_and_get_no_proxy_credentials() {
        let (upstream, head) = fake(OK).await;
        // A proxy nothing listens on: using it would fail the request.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let matcher = Matcher::builder()
            .all(format!("http://user:pass@{closed}"))
            .no("127.0.0.1")
            .build();
        let client = Client::with_proxies(matcher, true).unwrap();
        let resp = client.get(format!("http://{upstream}/v1/models")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let head = head.await.unwrap();
        assert!(head.starts_with("get /v1/models http/1.1\r\n"), "{head}");
        assert!(!head.contains("proxy-authorization"), "{head}");
        assert!(head.contains("accept: */*\r\n"), "{head}");
    }

    #[tokio::test]
    async fn credentials_in_the_url_are_sent_as_basic_auth_not_in_the_host() {
        let (upstream, head) = fake(OK).await;
        let client = direct();
        let resp = client
            .post(format!(
                "http://us%40er:p%3Ass@{upstream}/v1/chat/completions?api-key=q"
            ))
            .header("authorization", "Bearer k")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let head = head.await.unwrap();
        assert!(
            head.starts_with("post /v1/chat/completions?api-key=q http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("host: {upstream}\r\n")), "{head}");
        // base64("us@er:p:ss"), lower-cased with the rest of the head; the bearer token after it.
        assert!(head.contains("authorization: basic dxnazxi6cdpzcw==\r\n"), "{head}");
        assert!(head.contains("authorization: bearer k\r\n"), "{head}");
    }

    #[tokio::test]
    async fn a_307_is_sent_again_with_its_body_but_not_its_credentials_to_another_origin() {
        let (next, next_head) = fake(OK).await;
        let (first, first_head) = redirecting("307 Temporary Redirect", format!("http://{next}/moved?x=1")).await;
        let client = direct();
        let resp = chat(&client, format!("http://{first}/v1/chat/completions"))
            .header("authorization", "Bearer sk-secret")
            .header("x-api-key", "sk-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            first_head
                .await
                .unwrap()
                .contains("authorization: bearer sk-secret\r\n")
        );
        let head = next_head.await.unwrap();
        assert!(head.starts_with("post /moved?x=1 http/1.1\r\n"), "{head}");
        assert!(head.contains("content-length: 2\r\n"), "{head}");
        assert!(head.contains("content-type: application/json\r\n"), "{head}");
        assert!(!head.contains("sk-secret"), "{head}");
    }

    #[tokio::test]
    async fn a_302_is_followed_as_a_get_without_the_body_and_a_redirect_loop_ends() {
        let (next, next_head) = fake(OK).await;
        let (first, _) = redirecting("302 Found", format!("http://{next}/other")).await;
        let client = direct();
        let resp = chat(&client, format!("http://{first}/v1/chat/completions"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let head = next_head.await.unwrap();
        assert!(head.starts_with("get /other http/1.1\r\n"), "{head}");
        assert!(!head.contains("content-type"), "{head}");
        assert!(!head.contains("content-length: 2"), "{head}");

        // A server that redirects every request to itself: the eleventh answer is the client's.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&served);
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let reply = "HTTP/1.1 308 Permanent Redirect\r\nlocation: /again\r\ncontent-length: 0\r\n\r\n";
                        if sock.write_all(reply.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let resp = client.get(format!("http://{addr}/start")).send().await.unwrap();
        assert_eq!(resp.status(), 308);
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), MAX_REDIRECTS + 1);
    }

    #[tokio::test]
    async fn a_proxy_that_is_not_http_is_refused_with_its_credentials_masked() {
        let matcher = Matcher::builder()
            .all("socks5://user:secret-pass@127.0.0.1:1080")
            .build();
        let client = Client::with_proxies(matcher, true).unwrap();
        let err = client
            .get("https://upstream.invalid/")
            .send()
            .await
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(text.contains("not an http:// proxy"), "{text}");
        assert!(!text.contains("secret-pass"), "{text}");
    }

    #[tokio::test]
    async fn a_refused_connection_says_so_once() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = direct();
        let err = client
            .get(format!("http://{closed}/"))
            .send()
            .await
            .err()
            .expect("refused");
        let text = err.to_string().to_ascii_lowercase();
        assert_eq!(text.matches("connection refused").count(), 1, "{text}");
        assert!(!err.is_timeout());
    }

    #[tokio::test]
    async fn a_bad_header_or_url_is_an_error_at_send_not_a_panic() {
        let client = direct();
        let err = client
            .post("http://127.0.0.1:9/")
            .header("x-bad", "line\nbreak")
            .send()
            .await
            .err()
            .expect("a header value with a newline is refused");
        assert!(
            err.to_string().starts_with("cannot build the upstream request"),
            "{err}"
        );
        let err = client.get("not a url").send().await.err().expect("refused");
        assert!(
            err.to_string().starts_with("cannot build the upstream request"),
            "{err}"
        );
        assert!(parse_uri("http://host:99999/").is_err());
        assert_eq!(
            parse_uri("HTTP://Example.COM/v1/chat").unwrap().to_string(),
            "http://example.com/v1/chat"
        );
    }
}
