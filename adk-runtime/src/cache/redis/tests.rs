use std::time::Duration;

use super::RedisBackend;
use crate::cache::conformance::{Harness, conformance_suite};
use crate::redis::{RedisConnection, RedisSettings};

use crate::redis_server;

/// A server of its own per check, and a cache name of its own per backend, on Redis's clock (real time).
struct Redis {
    _server: redis_server::RedisServer,
    connection: RedisConnection,
}

fn redis() -> Redis {
    let server = redis_server::RedisServer::start("the Redis cache backend's conformance")
        .expect("the cache conformance checks need redis-server");
    let settings = RedisSettings::url(server.url()).command_timeout(Duration::from_secs(2));
    Redis { connection: RedisConnection::new(settings).unwrap(), _server: server }
}

impl Harness for Redis {
    type Backend = RedisBackend<u64, String>;

    fn backend(&self) -> RedisBackend<u64, String> {
        RedisBackend::new(self.connection.clone(), &format!("conformance-{:016x}", fastrand::u64(..)))
    }

    async fn pass(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

conformance_suite!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    redis()
);
