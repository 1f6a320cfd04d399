//! A real HTTP/1 server (hyper) on 127.0.0.1 that answers each path with a script: `/script/503,503,200/id` answers
//! 503 to its first two requests and 200 from then on. It runs on a thread of its own with its own runtime on the
//! real clock, so a test's paused clock neither stops it nor is advanced by it.
//!
//! Steps: `200`, any status (`503`, `404`), a status with a wait: `429s2` (`Retry-After: 2`), `429ms300`
//! (`retry-after-ms: 300`), `429date2` (`Retry-After` as the HTTP-date two seconds from now), and `slow` (200 after
//! a second).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

pub struct Server {
    addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, u32>>>,
}

/// The one server of this test binary, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound");
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counted = hits.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(serve(listener, counted));
        });
        Server { addr, hits }
    })
}

impl Server {
    /// The URL of a script; `id` keeps its request count apart from every other test's.
    pub fn url(&self, script: &str, id: &str) -> String {
        format!("http://{}/script/{script}/{id}", self.addr)
    }

    /// How many requests the script's URL has received.
    pub fn hits(&self, script: &str, id: &str) -> u32 {
        let path = format!("/script/{script}/{id}");
        self.hits.lock().unwrap_or_else(PoisonError::into_inner).get(&path).copied().unwrap_or(0)
    }
}

async fn serve(listener: std::net::TcpListener, hits: Arc<Mutex<HashMap<String, u32>>>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    while let Ok((stream, _)) = listener.accept().await {
        let hits = hits.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let hits = hits.clone();
                async move { Ok::<_, Infallible>(answer(&request, &hits).await) }
            });
            // A client that gives up (a timeout under test) closes its connection mid-request.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(request: &Request<Incoming>, hits: &Mutex<HashMap<String, u32>>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let Some(script) = path.strip_prefix("/script/").and_then(|rest| rest.split('/').next()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let steps: Vec<&str> = script.split(',').collect();
    let seen = {
        let mut hits = hits.lock().unwrap_or_else(PoisonError::into_inner);
        let count = hits.entry(path.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let step = steps[usize::try_from(seen - 1).unwrap_or(usize::MAX).min(steps.len() - 1)];
    if step == "slow" {
        tokio::time::sleep(Duration::from_secs(1)).await;
        return status(StatusCode::OK);
    }
    let digits = step.find(|c: char| !c.is_ascii_digit()).unwrap_or(step.len());
    let Ok(code) = step[..digits].parse::<u16>() else { return status(StatusCode::BAD_REQUEST) };
    let mut response = status(StatusCode::from_u16(code).expect("a valid status"));
    let (name, value) = match &step[digits..] {
        "" => return response,
        wait if wait.starts_with("date") => {
            let seconds: u64 = wait["date".len()..].parse().expect("seconds");
            ("retry-after", httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(seconds)))
        }
        wait if wait.starts_with("ms") => ("retry-after-ms", wait["ms".len()..].to_owned()),
        wait if wait.starts_with('s') => ("retry-after", wait[1..].to_owned()),
        _ => return status(StatusCode::BAD_REQUEST),
    };
    response.headers_mut().insert(name, value.parse().expect("a header value"));
    response
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = code;
    response
}
