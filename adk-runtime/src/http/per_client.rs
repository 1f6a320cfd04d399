//! [`RateLimitByKey`]: a per-client rate limit in front of an axum router, with the `X-RateLimit-*` headers on every
//! answer.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::response::{error_response, snapshot_headers};
use crate::rate_limit::{Denied, RateLimiter, Snapshot};
use crate::registry;
use crate::tower::BoxFuture;

/// Limits each client of a router by a key of the request, against one [`RateLimiter`] (a quota per key).
///
/// The key is, by choice:
/// - the peer's IP address (the default, [`by_peer_ip`](Self::by_peer_ip)), read from axum's
///   [`ConnectInfo<SocketAddr>`](ConnectInfo): serve the router with
///   `into_make_service_with_connect_info::<SocketAddr>()`. The port is left out, so a client's connections share
///   one quota;
/// - a header's value ([`by_header`](Self::by_header)), such as an API key;
/// - what a function of the request returns ([`by`](Self::by)), such as a tenant id parsed from a token.
///
/// Keys are hashed, never stored (see [`RateLimiter`]). A refused request never reaches the router: it is answered
/// with the [`Error::RateLimited`](crate::Error::RateLimited) response (429, `Retry-After` and `X-RateLimit-*`, see
/// [the module](super)). An admitted request's response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
/// `X-RateLimit-Reset` of its key as they are once it was admitted. A request without a key is answered as
/// [`MissingKey`] says: by default 401 (no header) or 500 (no peer address: a server set-up mistake, named in the
/// message).
///
/// The layer is `Clone`; clones share the limiter, and so does every attribute or layer naming the same registry
/// limiter ([`named`](Self::named)).
///
/// ```
/// use axum::Router;
/// use axum::body::Body;
/// use axum::http::{HeaderName, Request};
/// use axum::routing::get;
/// use tower::ServiceExt;
/// use adk_runtime::http::RateLimitByKey;
/// use adk_runtime::rate_limit::RateLimiter;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let limiter = RateLimiter::builder("doc-per-client").rpm(2).build().unwrap();
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(RateLimitByKey::new(limiter).by_header(HeaderName::from_static("x-api-key")));
/// let request = || Request::get("/").header("x-api-key", "k-1").body(Body::empty()).unwrap();
///
/// let first = app.clone().oneshot(request()).await.unwrap();
/// assert_eq!(first.status(), 200);
/// assert_eq!(first.headers()["x-ratelimit-remaining"], "1");
/// let _second = app.clone().oneshot(request()).await.unwrap();
/// let third = app.clone().oneshot(request()).await.unwrap();
/// assert_eq!(third.status(), 429);
/// let anonymous = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(anonymous.status(), 401);
/// # });
/// ```
#[derive(Clone)]
pub struct RateLimitByKey {
    limiter: Arc<RateLimiter>,
    key: ClientKey,
    missing: MissingKey,
}

/// Where a request's key comes from.
#[derive(Clone)]
enum ClientKey {
    PeerIp,
    Header(HeaderName),
    Function(Arc<KeyFn>),
}

/// A user's function from a request to its key.
type KeyFn = dyn Fn(&Request<Body>) -> Option<String> + Send + Sync;

/// Why a request was not let through.
enum Refused {
    Limited(Denied),
    MissingKey,
}

/// What [`RateLimitByKey`] does with a request it finds no key in.
///
/// ```
/// use adk_runtime::http::MissingKey;
/// assert_eq!(MissingKey::default(), MissingKey::Reject);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissingKey {
    /// Answer without calling the router: 401 with `{"error":"missing_client_key"}` when the header (or the
    /// function's key) is missing, for an API that identifies its clients; 500 with
    /// `{"error":"missing_peer_address"}` when the peer address is, since that means the server was not set up
    /// with `into_make_service_with_connect_info`.
    #[default]
    Reject,
    /// Charge the request to the limiter's one shared state (the quota of calls without a key), so anonymous
    /// clients share one quota between them.
    Shared,
}

impl RateLimitByKey {
    /// A per-client limit of `limiter` (from [`RateLimiter::builder`], or the registry), keyed by the peer's IP
    /// address until another key is chosen.
    pub fn new(limiter: Arc<RateLimiter>) -> Self {
        RateLimitByKey { limiter, key: ClientKey::PeerIp, missing: MissingKey::Reject }
    }

    /// A per-client limit of the registry's limiter called `name` (declared by an attribute, or already in use),
    /// sharing every key's quota with the functions limited by that name; `None` when nothing declares it.
    ///
    /// ```
    /// assert!(adk_runtime::http::RateLimitByKey::named("doc-nobody-declares-this").is_none());
    /// ```
    pub fn named(name: &str) -> Option<Self> {
        registry().rate_limiter(name).map(Self::new)
    }

    /// Keys clients by the peer's IP address (the default).
    pub fn by_peer_ip(mut self) -> Self {
        self.key = ClientKey::PeerIp;
        self
    }

    /// Keys clients by the value of header `name` (e.g. `HeaderName::from_static("x-api-key")`). A request that
    /// repeats the header is keyed by its first value.
    pub fn by_header(mut self, name: HeaderName) -> Self {
        self.key = ClientKey::Header(name);
        self
    }

    /// Keys clients by what `key` returns for the request; `None` is a request without a key.
    ///
    /// ```
    /// use adk_runtime::http::RateLimitByKey;
    /// use adk_runtime::rate_limit::RateLimiter;
    ///
    /// let limiter = RateLimiter::builder("doc-by-tenant").rps(10).build().unwrap();
    /// let layer = RateLimitByKey::new(limiter).by(|request| {
    ///     request.uri().path().strip_prefix("/tenants/")?.split('/').next().map(str::to_owned)
    /// });
    /// # let _ = layer;
    /// ```
    pub fn by(mut self, key: impl Fn(&Request<Body>) -> Option<String> + Send + Sync + 'static) -> Self {
        self.key = ClientKey::Function(Arc::new(key));
        self
    }

    /// What to do with a request without a key (default [`MissingKey::Reject`]).
    pub fn when_missing(mut self, missing: MissingKey) -> Self {
        self.missing = missing;
        self
    }

    /// The limiter the clients' quotas live in.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// Spends one unit of the request's key: the key's state once admitted, or why not.
    fn admit(&self, request: &Request<Body>) -> Result<Snapshot, Refused> {
        let decided = match &self.key {
            ClientKey::PeerIp => {
                request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| self.spend(&peer.ip()))
            }
            ClientKey::Header(name) => request.headers().get(name).map(|value| self.spend(value.as_bytes())),
            ClientKey::Function(key) => key(request).map(|key| self.spend(key.as_str())),
        };
        match (decided, self.missing) {
            (Some(decided), _) => decided,
            (None, MissingKey::Shared) => match self.limiter.check() {
                Ok(()) => Ok(self.limiter.snapshot()),
                Err(denied) => Err(Refused::Limited(denied)),
            },
            (None, MissingKey::Reject) => Err(Refused::MissingKey),
        }
    }

    fn spend<K: std::hash::Hash + ?Sized>(&self, key: &K) -> Result<Snapshot, Refused> {
        match self.limiter.check_key(key) {
            Ok(()) => Ok(self.limiter.snapshot_key(key)),
            Err(denied) => Err(Refused::Limited(denied)),
        }
    }

    #[cold]
    fn refusal(&self, refused: Refused) -> Response {
        match refused {
            Refused::Limited(denied) => denied.into_error(self.limiter.name()).into_response(),
            Refused::MissingKey => self.missing_key(),
        }
    }

    #[cold]
    fn missing_key(&self) -> Response {
        match &self.key {
            ClientKey::PeerIp => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "missing_peer_address",
                "the server does not know the peer's address: serve the router with \
                 into_make_service_with_connect_info::<SocketAddr>()",
            ),
            ClientKey::Header(name) => error_response(
                StatusCode::UNAUTHORIZED,
                "missing_client_key",
                &format!("the request has no `{name}` header"),
            ),
            ClientKey::Function(_) => {
                error_response(StatusCode::UNAUTHORIZED, "missing_client_key", "the request does not say who sends it")
            }
        }
    }
}

impl fmt::Debug for RateLimitByKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.key {
            ClientKey::PeerIp => "peer ip".to_owned(),
            ClientKey::Header(name) => format!("header {name}"),
            ClientKey::Function(_) => "function".to_owned(),
        };
        f.debug_struct("RateLimitByKey")
            .field("limiter", &self.limiter.name())
            .field("key", &key)
            .field("missing", &self.missing)
            .finish()
    }
}

impl<S> Layer<S> for RateLimitByKey {
    type Service = RateLimitByKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitByKeyService { inner, layer: self.clone() }
    }
}

/// The service of [`RateLimitByKey`].
#[derive(Debug, Clone)]
pub struct RateLimitByKeyService<S> {
    inner: S,
    layer: RateLimitByKey,
}

impl<S> Service<Request<Body>> for RateLimitByKeyService<S>
where
    S: Service<Request<Body>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        match self.layer.admit(&request) {
            Ok(snapshot) => {
                let call = self.inner.call(request);
                Box::pin(async move {
                    let mut response = call.await?;
                    snapshot_headers(response.headers_mut(), snapshot);
                    Ok(response)
                })
            }
            Err(refused) => Box::pin(std::future::ready(Ok(self.layer.refusal(refused)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app(layer: RateLimitByKey) -> Router {
        Router::new().route("/", get(|| async { "ok" })).layer(layer)
    }

    fn from(ip: [u8; 4], port: u16) -> Request<Body> {
        let mut request = Request::get("/").body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, port))));
        request
    }

    fn number(response: &Response, name: &str) -> u64 {
        response.headers()[name].to_str().unwrap().parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn peers_are_limited_by_ip_whatever_their_port() {
        let limiter = RateLimiter::builder("per-client-peer").rpm(2).build().unwrap();
        let app = app(RateLimitByKey::new(limiter));
        assert_eq!(app.clone().oneshot(from([10, 0, 0, 1], 4000)).await.unwrap().status(), 200);
        assert_eq!(app.clone().oneshot(from([10, 0, 0, 1], 4001)).await.unwrap().status(), 200);
        let refused = app.clone().oneshot(from([10, 0, 0, 1], 4002)).await.unwrap();
        assert_eq!(refused.status(), 429);
        assert_eq!(number(&refused, "retry-after"), 30);
        assert_eq!(app.oneshot(from([10, 0, 0, 2], 4000)).await.unwrap().status(), 200, "another peer");
    }

    #[tokio::test(start_paused = true)]
    async fn admitted_responses_count_down_and_the_refusal_agrees_with_the_limiter() {
        let limiter = RateLimiter::builder("per-client-countdown").rpm(3).build().unwrap();
        let app = app(RateLimitByKey::new(limiter.clone()).by_header(HeaderName::from_static("x-api-key")));
        let request = || Request::get("/").header("x-api-key", "alice").body(Body::empty()).unwrap();
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let response = app.clone().oneshot(request()).await.unwrap();
            assert_eq!((response.status(), number(&response, "x-ratelimit-limit")), (StatusCode::OK, 3));
            remaining.push(number(&response, "x-ratelimit-remaining"));
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refused = app.clone().oneshot(request()).await.unwrap();
        assert_eq!(refused.status(), 429);
        assert_eq!((number(&refused, "x-ratelimit-limit"), number(&refused, "x-ratelimit-remaining")), (3, 0));
        assert_eq!(limiter.snapshot_key(b"alice".as_slice()).remaining, 0, "keyed by the header's bytes");
        tokio::time::advance(Duration::from_secs(20)).await;
        let again = app.oneshot(request()).await.unwrap();
        assert_eq!((again.status(), number(&again, "x-ratelimit-remaining")), (StatusCode::OK, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_without_the_header_is_401_or_shares_one_quota() {
        let limiter = RateLimiter::builder("per-client-missing").rpm(1).build().unwrap();
        let layer = RateLimitByKey::new(limiter).by_header(HeaderName::from_static("x-api-key"));
        let anonymous = || Request::get("/").body(Body::empty()).unwrap();
        let rejected = app(layer.clone()).oneshot(anonymous()).await.unwrap();
        assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
        let shared = app(layer.when_missing(MissingKey::Shared));
        assert_eq!(shared.clone().oneshot(anonymous()).await.unwrap().status(), 200);
        assert_eq!(shared.oneshot(anonymous()).await.unwrap().status(), 429, "one quota for all anonymous clients");
    }

    #[tokio::test(start_paused = true)]
    async fn without_connect_info_the_peer_key_names_the_set_up_mistake() {
        let limiter = RateLimiter::builder("per-client-no-peer").rpm(1).build().unwrap();
        let response = app(RateLimitByKey::new(limiter)).oneshot(Request::get("/").body(Body::empty()).unwrap());
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test(start_paused = true)]
    async fn a_function_of_the_request_chooses_the_key() {
        let limiter = RateLimiter::builder("per-client-function").rpm(1).build().unwrap();
        let app = Router::new()
            .route("/t/{tenant}", get(|| async { "ok" }))
            .layer(RateLimitByKey::new(limiter).by(|r| r.uri().path().strip_prefix("/t/").map(str::to_owned)));
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(get("/t/a")).await.unwrap().status(), 200);
        assert_eq!(app.clone().oneshot(get("/t/a")).await.unwrap().status(), 429);
        assert_eq!(app.oneshot(get("/t/b")).await.unwrap().status(), 200);
    }
}
