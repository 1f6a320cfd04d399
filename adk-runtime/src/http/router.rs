//! [`router()`]: the probes and `/metrics` as routes of an application's axum router.

use axum::Router;
use axum::body::Body;
use axum::http::Method;
use axum::response::Response;
use axum::routing::any;

use crate::health::{self, Health};

/// `/metrics`, `/health/live`, `/health/ready` and `/health/startup` of the process-wide probes
/// ([`health::global`]), to merge into an application's router so that one port serves both. They answer exactly as
/// the standalone [`HealthServer`](crate::health::HealthServer) does: probes as JSON, 200 when healthy or degraded
/// and 503 when unhealthy; `/metrics` as Prometheus text; `GET` and `HEAD` only (405 otherwise). The router is
/// generic over the application's state, so it merges into a `Router<AppState>` too.
///
/// ```
/// use axum::Router;
/// use axum::body::Body;
/// use axum::http::Request;
/// use axum::routing::get;
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let app: Router = Router::new().route("/", get(|| async { "app" })).merge(adk_runtime::http::router());
/// let live = app.oneshot(Request::get("/health/live").body(Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(live.status(), 200);
/// # });
/// ```
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    router_for(health::global().clone())
}

/// The routes of [`router()`] for probes of one's own (a [`Health`] apart from the process-wide one, in tests or
/// for a second set of checks).
///
/// ```
/// use adk_runtime::health::Health;
///
/// let health = Health::new();
/// let routes: axum::Router = adk_runtime::http::router_for(health.clone());
/// health.mark_started();
/// # let _ = routes;
/// ```
pub fn router_for<S: Clone + Send + Sync + 'static>(health: Health) -> Router<S> {
    health::PATHS.into_iter().fold(Router::new(), |router, path| {
        let health = health.clone();
        // The path is the one routed, not the request's (which a `nest` would have rewritten).
        router.route(
            path,
            any(move |method: Method| {
                let health = health.clone();
                async move { health::respond(&health, &method, path).await.map(Body::new) as Response }
            }),
        )
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::health::CheckResult;

    async fn send(app: &Router, method: Method, path: &str) -> (StatusCode, String) {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_routes_answer_as_the_standalone_server_does() {
        let health = Health::new();
        health.add_check("model", || async { CheckResult::degraded("slow") });
        let app: Router = Router::new().merge(router_for(health.clone()));
        assert_eq!(send(&app, Method::GET, "/health/startup").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(send(&app, Method::GET, "/health/live").await.0, StatusCode::OK);
        health.mark_started();
        let (status, body) = send(&app, Method::GET, "/health/ready").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"status": "degraded", "checks": [{"name": "model", "status": "degraded", "reason": "slow"}]})
        );
        assert_eq!(send(&app, Method::POST, "/health/ready").await.0, StatusCode::METHOD_NOT_ALLOWED);
        crate::fallback::FALLBACKS_TOTAL.with(&["http::router::tests"]).inc();
        let (status, metrics) = send(&app, Method::GET, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(metrics.contains(r#"adk_fallbacks_total{function="http::router::tests"} 1"#), "{metrics}");
    }

    #[tokio::test]
    async fn the_routes_keep_their_paths_when_nested() {
        let app: Router = Router::new().nest("/ops", router_for(Health::new()));
        assert_eq!(send(&app, Method::GET, "/ops/health/live").await.0, StatusCode::OK);
        assert_eq!(send(&app, Method::GET, "/health/live").await.0, StatusCode::NOT_FOUND);
    }
}
