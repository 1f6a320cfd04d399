//! The registry of named instances: one name declared with different settings is reported at start-up, with both
//! call sites, before either function runs.

#[derive(Debug, thiserror::Error)]
enum DbError {
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for DbError {}

#[adk::circuit_breaker(name = "registry-test-db", failure_rate = 0.5)]
async fn reads() -> Result<u32, DbError> {
    Ok(1)
}

#[adk::circuit_breaker(name = "registry-test-db", failure_rate = 0.9)]
async fn writes() -> Result<u32, DbError> {
    Ok(2)
}

#[adk::rate_limited(name = "registry-test-provider", rpm = 60)]
async fn agrees_a() -> Result<u32, DbError> {
    Ok(1)
}

#[adk::rate_limited(name = "registry-test-provider", rpm = 60)]
async fn agrees_b() -> Result<u32, DbError> {
    Ok(1)
}

// Never called: only the start-up comparison of declarations can find their conflict.
#[adk::circuit_breaker(name = "registry-startup-only", failure_rate = 0.5)]
async fn never_called_a() -> Result<u32, DbError> {
    Ok(1)
}

#[adk::circuit_breaker(name = "registry-startup-only", failure_rate = 0.9)]
async fn never_called_b() -> Result<u32, DbError> {
    Ok(2)
}

#[test]
fn differing_declarations_of_one_name_are_reported_before_any_call() {
    let conflicts = adk::registry().conflicts();
    let conflict = conflicts.iter().find(|c| c.name == "registry-startup-only").expect("reported at start-up");
    assert_eq!(conflict.kind, adk::registry::Kind::CIRCUIT_BREAKER);
    let mut sites = [conflict.first.call_site, conflict.second.call_site];
    sites.sort();
    assert!(sites.iter().all(|s| s.starts_with("tests/registry.rs:")), "{sites:?}");
    assert_ne!(sites[0], sites[1], "both call sites");
    assert_eq!(conflict.in_force, None, "neither function has run");
    assert!(!conflicts.iter().any(|c| c.name == "registry-test-provider"), "equal settings are one instance");
    let _ = (never_called_a, never_called_b, agrees_a(), agrees_b());
}

#[test]
fn a_declared_name_can_be_looked_up_before_any_call_under_it() {
    // Operators (and tower layers) reach a named instance at start-up, before traffic: the registry makes it from
    // the declaration, with the settings it declares.
    let provider = adk::registry().rate_limiter("registry-test-provider").expect("made from its declaration");
    assert_eq!(provider.quota().rate().count(), 60);
    let breaker = adk::registry().circuit_breaker("registry-lookup-only").expect("made from its declaration");
    assert_eq!((breaker.config().failure_rate(), breaker.config().min_calls()), (0.25, 3));
    assert!(adk::registry().circuit_breaker("registry-nobody-declares").is_none());
    let _ = never_called_c;
}

// Never called either: only its declaration can make its breaker.
#[adk::circuit_breaker(name = "registry-lookup-only", failure_rate = 0.25, min_calls = 3)]
async fn never_called_c() -> Result<u32, DbError> {
    Ok(3)
}

#[tokio::test]
async fn a_conflict_is_reported_once_even_after_both_functions_run() {
    reads().await.unwrap();
    writes().await.unwrap();
    let count = adk::registry().conflicts().iter().filter(|c| c.name == "registry-test-db").count();
    assert_eq!(count, 1);
    let breaker = adk::registry().circuit_breaker("registry-test-db").unwrap();
    assert_eq!(breaker.snapshot().calls, 2, "both functions share the first declaration's breaker");
}

#[adk::circuit_breaker(name = "registry-in-force", min_calls = 5)]
async fn runs_first() -> Result<u32, DbError> {
    Ok(1)
}

#[adk::circuit_breaker(name = "registry-in-force", min_calls = 50)]
async fn runs_second() -> Result<u32, DbError> {
    Ok(2)
}

#[tokio::test]
async fn a_conflict_names_the_declaration_in_force_once_the_name_is_used() {
    let conflict = || {
        adk::registry().conflicts().into_iter().find(|c| c.name == "registry-in-force").expect("reported at start-up")
    };
    assert_eq!(conflict().in_force, None, "no function under the name has run");
    runs_second().await.unwrap();
    runs_first().await.unwrap();
    let conflict = conflict();
    let in_force = conflict.in_force.expect("known once the instance exists");
    let settings = in_force.settings.downcast_ref::<adk::runtime::circuit_breaker::CircuitBreakerConfig>();
    assert_eq!(settings.map(|s| s.min_calls()), Some(50), "the first to run set the settings: {:?}", in_force.settings);
    let declared = [&conflict.first, &conflict.second];
    assert!(declared.contains(&&in_force), "{in_force:?} is one of {declared:?}");
}
