//! The least a Rust proxy on tokio and hyper can do per request, as a yardstick for tollgate's
//! added latency (`bench/miniproxy.sh`): read the client's body, send it to the upstream with its
//! content type and authorization, relay the answer's status, content type and body as they come.
//! No parsing, no records. One current-thread runtime per core on a shared listener, as tollgate's
//! serving workers are; the upstream client is hyper-util's (`hyper`) or reqwest's (`reqwest`).
//!
//!   miniproxy PORT UPSTREAM_BASE hyper|reqwest

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone)]
enum Upstream {
    // Shared, not copied per request (the client itself is 300 bytes of handles).
    Hyper(Arc<Client<HttpConnector, Full<Bytes>>>),
    Reqwest(reqwest::Client),
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(base), Some(kind)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: miniproxy PORT UPSTREAM_BASE hyper|reqwest");
        std::process::exit(2);
    };
    let port: u16 = port.parse().map_err(std::io::Error::other)?;
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    listener.set_nonblocking(true)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = Vec::new();
    for _ in 0..cores {
        let listener = listener.try_clone()?;
        let base = base.clone();
        let kind = kind.clone();
        threads.push(std::thread::spawn(move || -> std::io::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(serve(listener, base, kind))
        }));
    }
    for t in threads {
        t.join().map_err(|_| std::io::Error::other("worker panicked"))??;
    }
    Ok(())
}

async fn serve(listener: std::net::TcpListener, base: String, kind: String) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let upstream = match kind.as_str() {
        "hyper" => {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            Upstream::Hyper(Arc::new(Client::builder(TokioExecutor::new()).build(connector)))
        }
        _ => Upstream::Reqwest(
            reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                .build()
                .map_err(std::io::Error::other)?,
        ),
    };
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let upstream = upstream.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| proxy(req, upstream.clone(), base.clone()));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

async fn proxy(req: Request<Incoming>, upstream: Upstream, base: String) -> Result<Response<Body>, Infallible> {
    let url = format!("{base}{}", req.uri().path().trim_start_matches("/v1"));
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let auth = req.headers().get(header::AUTHORIZATION).cloned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(bad_gateway(&e.to_string())),
    };
    Ok(match upstream {
        Upstream::Hyper(client) => {
            let mut out = Request::post(url);
            if let Some(v) = content_type {
                out = out.header(header::CONTENT_TYPE, v);
            }
            if let Some(v) = auth {
                out = out.header(header::AUTHORIZATION, v);
            }
            let Ok(out) = out.body(Full::new(body)) else {
                return Ok(bad_gateway("bad upstream request"));
            };
            match client.request(out).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    relay(
                        parts.status,
                        parts.headers.get(header::CONTENT_TYPE).cloned(),
                        body.map_err(Into::into).boxed(),
                    )
                }
                Err(e) => bad_gateway(&e.to_string()),
            }
        }
        Upstream::Reqwest(client) => {
            let mut out = client.post(url).body(body);
            if let Some(v) = content_type {
                out = out.header(header::CONTENT_TYPE, v);
            }
            if let Some(v) = auth {
                out = out.header(header::AUTHORIZATION, v);
            }
            match out.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
                    let frames = resp.bytes_stream().map_ok(Frame::data).map_err(Into::into);
                    relay(status, content_type, BodyExt::boxed(StreamBody::new(frames)))
                }
                Err(e) => bad_gateway(&e.to_string()),
            }
        }
    })
}

fn relay(status: hyper::StatusCode, content_type: Option<header::HeaderValue>, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Some(v) = content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn bad_gateway(message: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(message.to_string()))
        .map_err(|e: Infallible| match e {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    resp
}
