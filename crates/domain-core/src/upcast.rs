//! Upcasting: old event versions are transformed on read, never rewritten.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::{Envelope, Error, Result};

type UpcastFn = Box<dyn Fn(Value) -> std::result::Result<Value, String> + Send + Sync>;

/// Upcasters keyed by `<context>.<EventName>` and the version they read.
#[derive(Default)]
pub struct UpcasterRegistry {
    steps: HashMap<(String, u32), UpcastFn>,
}

impl fmt::Debug for UpcasterRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpcasterRegistry").field("steps", &self.steps.keys().collect::<Vec<_>>()).finish()
    }
}

impl UpcasterRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step from `from_version` to `from_version + 1` of the
    /// unversioned type `context.EventName`.
    pub fn register(
        &mut self,
        unversioned_type: &str,
        from_version: u32,
        step: impl Fn(Value) -> std::result::Result<Value, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.steps.insert((unversioned_type.to_owned(), from_version), Box::new(step));
        self
    }

    /// Applies every registered step in order until none matches.
    pub fn upcast(&self, mut env: Envelope) -> Result<Envelope> {
        while let Some(step) = self.steps.get(&(env.event_type.unversioned(), env.event_type.version())) {
            let data = std::mem::take(&mut env.data);
            env.data = step(data).map_err(|reason| Error::Upcast { event_type: env.event_type.to_string(), reason })?;
            env.event_type = env.event_type.next_version();
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample::CounterEvent;
    use serde_json::json;

    fn v1(by: Value) -> Envelope {
        Envelope::raw("counter", "counter.Incremented.v1".parse().expect("valid"), "c-1", 1, json!({ "amount": by }))
    }

    fn registry() -> UpcasterRegistry {
        let mut r = UpcasterRegistry::new();
        r.register("counter.Incremented", 1, |mut v| {
            let amount = v.get_mut("amount").map(Value::take).ok_or("no `amount` field")?;
            Ok(json!({ "by": amount }))
        });
        r
    }

    #[test]
    fn old_versions_decode_after_upcasting() {
        let env = registry().upcast(v1(json!(5))).expect("upcasts");
        assert_eq!(env.event_type.to_string(), "counter.Incremented.v2");
        assert_eq!(env.decode::<CounterEvent>().expect("decodes"), CounterEvent::Incremented { by: 5 });
    }

    #[test]
    fn current_versions_pass_through_and_failures_are_typed() {
        let current = Envelope::new("c-1", 1, &CounterEvent::Incremented { by: 1 }).expect("encodes");
        assert_eq!(registry().upcast(current.clone()).expect("no-op"), current);
        let mut broken = v1(json!(1));
        broken.data = json!({});
        assert!(matches!(registry().upcast(broken), Err(Error::Upcast { .. })));
    }
}
