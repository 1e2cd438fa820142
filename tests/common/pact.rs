//! Consumer-side Pact helpers shared by the consumer tests of every system.

use std::path::PathBuf;

use pact_consumer::prelude::*;
use stormproof::systems::kit::HandleOutcome;

/// The envelope every event of the reference systems carries, as a
/// pattern, with `fields` added.
pub fn event(event_type: &str, fields: JsonPattern) -> JsonPattern {
    let mut pattern = json_pattern!({
        "eventType": event_type,
        "id": like!("5b0f3c52-3d0e-4b6a-9a57-0c5d1d0b6c11"),
        "timestamp": like!("2026-01-01T00:00:00Z")
    });
    if let (JsonPattern::Object(all), JsonPattern::Object(more)) = (&mut pattern, fields) {
        all.extend(more);
    }
    pattern
}

/// Feeds every message of `builder` to `apply` (the consumer's handler),
/// each to a fresh store, and requires it applied; the pact file is
/// written once they are consumed.
pub async fn feed<F, Fut>(builder: &PactBuilder, apply: F)
where
    F: Fn(PathBuf, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<HandleOutcome>>,
{
    let dir = tempfile::tempdir().unwrap();
    let mut count = 0;
    for (i, message) in builder.messages().enumerate() {
        let payload = message.contents.contents.value().expect("message has a body").to_vec();
        let outcome = apply(dir.path().join(format!("{i}.db")), payload.clone()).await;
        assert_eq!(outcome.expect("handler failed"), HandleOutcome::Applied, "{} was not applied: {}", message.description, String::from_utf8_lossy(&payload));
        count += 1;
    }
    assert!(count > 0, "no messages");
}
