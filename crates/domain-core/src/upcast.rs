//! Upcasting: old event versions are transformed on read, never rewritten.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::{Envelope, Error, EventType, Result};

type UpcastFn = Box<dyn Fn(Value) -> std::result::Result<Value, String> + Send + Sync>;

/// Upcasters keyed by the event type (with version) they read.
#[derive(Default)]
pub struct UpcasterRegistry {
    steps: HashMap<EventType, UpcastFn>,
}

impl fmt::Debug for UpcasterRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.steps.keys().map(ToString::to_string).collect();
        f.debug_struct("UpcasterRegistry").field("steps", &keys).finish()
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
    ) -> Result<&mut Self> {
        let (context, name) = unversioned_type.split_once('.').ok_or_else(|| Error::InvalidEventType {
            value: unversioned_type.to_owned(),
            reason: "register `<context>.<EventName>` without the version",
        })?;
        self.steps.insert(EventType::new(context, name, from_version)?, Box::new(step));
        Ok(self)
    }

    /// Applies every registered step in order until none matches.
    pub fn upcast(&self, mut env: Envelope) -> Result<Envelope> {
        if self.steps.is_empty() {
            return Ok(env);
        }
        while let Some(step) = self.steps.get(&env.event_type) {
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
        })
        .expect("valid type");
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
