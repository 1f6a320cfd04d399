//! A real gRPC server (tonic) on 127.0.0.1, and a client call to it. Every method of the service `adk.test.Flaky`
//! answers by the script in the request's `x-script` metadata, one step per request to that method: `ok`, a code
//! (`unavailable`, `not_found`, `resource_exhausted`), or `unavailable_retry2` (Unavailable with a
//! `google.rpc.RetryInfo` of two seconds). Like the HTTP server, it runs on its own thread and runtime.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::http;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub struct Server {
    addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, u32>>>,
}

pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound");
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let service = Flaky { hits: hits.clone() };
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                    .await
                    .expect("the gRPC server runs");
            });
        });
        Server { addr, hits }
    })
}

impl Server {
    /// Calls `/adk.test.Flaky/{method}` with `script`: `Ok(())` or the status the server (or the transport) gave.
    pub async fn call(&self, method: &str, script: &str) -> Result<(), Status> {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", self.addr))
            .expect("a valid URI")
            .connect_lazy();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| Status::from_error(Box::new(e)))?;
        let mut request = tonic::Request::new(());
        request.metadata_mut().insert("x-script", script.parse().expect("ascii"));
        let path = format!("/adk.test.Flaky/{method}").parse().expect("a path");
        grpc.unary::<(), (), _>(request, path, tonic_prost::ProstCodec::default()).await.map(|_| ())
    }

    pub fn hits(&self, method: &str) -> u32 {
        let path = format!("/adk.test.Flaky/{method}");
        self.hits.lock().unwrap_or_else(PoisonError::into_inner).get(&path).copied().unwrap_or(0)
    }
}

#[derive(Clone)]
struct Flaky {
    hits: Arc<Mutex<HashMap<String, u32>>>,
}

impl tonic::server::NamedService for Flaky {
    const NAME: &'static str = "adk.test.Flaky";
}

impl tower::Service<http::Request<tonic::body::Body>> for Flaky {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let seen = {
            let mut hits = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
            let count = hits.entry(request.uri().path().to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        let script = request.headers().get("x-script").and_then(|v| v.to_str().ok()).unwrap_or("ok").to_owned();
        let answer = tower::service_fn(move |_: tonic::Request<()>| {
            let steps: Vec<&str> = script.split(',').collect();
            let step = steps[usize::try_from(seen - 1).unwrap_or(usize::MAX).min(steps.len() - 1)];
            let outcome = match step {
                "ok" => Ok(tonic::Response::new(())),
                "unavailable" => Err(Status::unavailable("overloaded")),
                "unavailable_retry2" => Err(Status::with_error_details(
                    Code::Unavailable,
                    "overloaded, come back later",
                    ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
                )),
                "not_found" => Err(Status::not_found("no such model")),
                "resource_exhausted" => Err(Status::resource_exhausted("quota")),
                other => Err(Status::invalid_argument(format!("unknown step {other}"))),
            };
            std::future::ready(outcome)
        });
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<(), ()>::default());
            Ok(grpc.unary(answer, request).await)
        })
    }
}
