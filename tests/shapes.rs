//! The function shapes the attributes accept: generics, where clauses, lifetimes, `impl Trait` arguments, methods in
//! inherent and trait impls, `#[async_trait]`, destructured arguments; and annotated futures stay `Send`.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum AppError {
    #[error("again")]
    Again,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for AppError {}

/// Fails on the first call of each test, then succeeds.
struct Once(AtomicU32);

impl Once {
    fn new() -> Self {
        Once(AtomicU32::new(0))
    }
    fn check(&self) -> Result<(), AppError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 { Err(AppError::Again) } else { Ok(()) }
    }
}

#[adk::retry(attempts = 2, base = "1ms")]
#[adk::timeout("1s")]
async fn generic<T, U>(gate: &Once, value: T, extra: U) -> Result<String, AppError>
where
    T: Clone + Debug + Send,
    U: Clone + Into<u64> + Send,
{
    gate.check()?;
    Ok(format!("{value:?}/{}", extra.into()))
}

#[adk::retry(attempts = 2, base = "1ms")]
async fn borrowed<'a, 'b: 'a>(gate: &'a Once, text: &'b str) -> Result<&'b str, AppError> {
    gate.check()?;
    Ok(text.trim())
}

#[adk::retry(attempts = 2, base = "1ms")]
async fn impl_trait(gate: &Once, items: impl IntoIterator<Item = u32> + Clone) -> Result<u32, AppError> {
    gate.check()?;
    Ok(items.into_iter().sum())
}

#[adk::retry(attempts = 2, base = "1ms")]
async fn destructured(gate: &Once, (a, b): (u32, u32), Wrapper(c): Wrapper) -> Result<u32, AppError> {
    gate.check()?;
    Ok(a + b + c)
}

#[derive(Clone)]
struct Wrapper(u32);

#[tokio::test(start_paused = true)]
async fn free_functions_of_every_shape_are_retried() {
    assert_eq!(generic(&Once::new(), "x", 7u8).await.unwrap(), "\"x\"/7");
    assert_eq!(borrowed(&Once::new(), "  hi ").await.unwrap(), "hi");
    assert_eq!(impl_trait(&Once::new(), vec![1, 2, 3]).await.unwrap(), 6);
    assert_eq!(destructured(&Once::new(), (1, 2), Wrapper(3)).await.unwrap(), 6);
}

trait Model {
    async fn ask(&self, prompt: &str) -> Result<String, AppError>;
}

struct Local {
    gate: Once,
}

impl Model for Local {
    #[adk::retry(attempts = 2, base = "1ms")]
    async fn ask(&self, prompt: &str) -> Result<String, AppError> {
        self.gate.check()?;
        Ok(prompt.to_uppercase())
    }
}

#[async_trait::async_trait]
trait DynModel: Send + Sync {
    async fn ask(&self, prompt: &str) -> Result<String, AppError>;
}

#[async_trait::async_trait]
impl DynModel for Local {
    #[adk::retry(attempts = 2, base = "1ms")]
    #[adk::timeout("1s")]
    async fn ask(&self, prompt: &str) -> Result<String, AppError> {
        self.gate.check()?;
        Ok(prompt.to_lowercase())
    }
}

#[tokio::test(start_paused = true)]
async fn trait_methods_and_async_trait_methods_are_retried() {
    let local = Local { gate: Once::new() };
    assert_eq!(Model::ask(&local, "hi").await.unwrap(), "HI");
    let boxed: Box<dyn DynModel> = Box::new(Local { gate: Once::new() });
    assert_eq!(boxed.ask("HI").await.unwrap(), "hi");
}

#[tokio::test(start_paused = true)]
async fn annotated_futures_are_send_and_can_be_spawned() {
    let handle = tokio::spawn(async {
        let gate = Once::new();
        let local = Local { gate: Once::new() };
        let a = generic(&gate, 1u32, 2u16).await.unwrap();
        let b = Model::ask(&local, "x").await.unwrap();
        format!("{a} {b}")
    });
    assert_eq!(handle.await.unwrap(), "1/2 X");
}

mod renamed {
    use ::adk as my_adk;

    #[my_adk::retry(crate = "my_adk", attempts = 2, base = "1ms")]
    #[my_adk::timeout("1s")]
    pub async fn through_alias(gate: &super::Once) -> Result<u32, super::AppError> {
        gate.check()?;
        Ok(1)
    }
}

#[tokio::test(start_paused = true)]
async fn a_renamed_dependency_is_reached_through_crate() {
    assert_eq!(renamed::through_alias(&Once::new()).await.unwrap(), 1);
}
