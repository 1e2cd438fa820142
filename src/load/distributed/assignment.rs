//! An assignment: what the coordinator hands one worker — its share of the
//! plan, as JSON, so a worker on another host (a pod) needs no URL file or
//! flags of its own.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::super::plan::{Counting, LoadPlan, Method, Model, Stop, Target};

/// One worker's share and where it stands among the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    /// [`super::PROTOCOL_VERSION`] of the coordinator.
    pub version: u32,
    /// This worker's index, from 0.
    pub worker: usize,
    /// How many workers share the run.
    pub workers: usize,
    /// The share.
    pub plan: WirePlan,
}

/// A [`LoadPlan`] as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WirePlan {
    targets: Vec<WireTarget>,
    users: u32,
    stop: Stop,
    delay_us: u64,
    model: Model,
    headers: Vec<(String, String)>,
    user_agent: String,
    content_type: Option<String>,
    keepalive: bool,
    timeout_us: u64,
    random_order: bool,
    counting: Counting,
    threads: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireTarget {
    method: String,
    url: String,
    /// Base64.
    body: Option<String>,
    content_type: Option<String>,
    route: String,
}

impl WirePlan {
    /// The plan as sent.
    pub fn of(plan: &LoadPlan) -> WirePlan {
        let b64 = base64::engine::general_purpose::STANDARD;
        WirePlan {
            targets: plan
                .targets
                .iter()
                .map(|t| WireTarget {
                    method: t.method.to_string(),
                    url: t.url.clone(),
                    body: t.body.as_ref().map(|b| b64.encode(b)),
                    content_type: t.content_type.clone(),
                    route: t.route.clone(),
                })
                .collect(),
            users: plan.users,
            stop: plan.stop,
            delay_us: plan.delay.as_micros() as u64,
            model: plan.model,
            headers: plan
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            user_agent: plan.user_agent.clone(),
            content_type: plan.content_type.clone(),
            keepalive: plan.keepalive,
            timeout_us: plan.timeout.as_micros() as u64,
            random_order: plan.random_order,
            counting: plan.counting,
            threads: plan.workers,
        }
    }

    /// The plan back, or what in it is not valid.
    pub fn to_plan(&self) -> Result<LoadPlan, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut targets = Vec::with_capacity(self.targets.len());
        for t in &self.targets {
            let method = Method::from_bytes(t.method.as_bytes()).map_err(|_| format!("bad method `{}`", t.method))?;
            let body = match &t.body {
                Some(b) => Some(Bytes::from(b64.decode(b).map_err(|e| format!("bad body of {}: {e}", t.url))?)),
                None => None,
            };
            let mut target = Target::new(method, &t.url, body)?;
            target.content_type = t.content_type.clone();
            target.route = t.route.clone();
            targets.push(target);
        }
        let mut plan = LoadPlan::new(targets);
        plan.users = self.users;
        plan.stop = self.stop;
        plan.delay = Duration::from_micros(self.delay_us);
        plan.model = self.model;
        for (n, v) in &self.headers {
            let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("bad header name `{n}`"))?;
            let value = HeaderValue::from_str(v).map_err(|_| format!("bad value of header `{n}`"))?;
            plan.headers.push((name, value));
        }
        plan.user_agent = self.user_agent.clone();
        plan.content_type = self.content_type.clone();
        plan.keepalive = self.keepalive;
        plan.timeout = Duration::from_micros(self.timeout_us);
        plan.random_order = self.random_order;
        plan.counting = self.counting;
        plan.workers = self.threads;
        plan.timeline = true;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_survives_the_wire() {
        let mut plan = LoadPlan::new(vec![
            Target::get("http://127.0.0.1:9/a?x=1").unwrap(),
            Target::new(Method::POST, "127.0.0.1:9/orders", Some(Bytes::from_static(b"{\"n\":1}"))).unwrap(),
        ]);
        plan.users = 7;
        plan.stop = Stop::First { reps: 3, time: Duration::from_secs(5) };
        plan.model = Model::Open { rate: 12.5 };
        plan.delay = Duration::from_millis(1500);
        plan.headers.push((HeaderName::from_static("x-run"), HeaderValue::from_static("42")));
        plan.counting = Counting::Siege;
        let json = serde_json::to_string(&WirePlan::of(&plan)).unwrap();
        let back = serde_json::from_str::<WirePlan>(&json).unwrap().to_plan().unwrap();
        assert_eq!(back.targets, plan.targets);
        assert_eq!((back.users, back.stop, back.model, back.delay), (plan.users, plan.stop, plan.model, plan.delay));
        assert_eq!(back.headers, plan.headers);
        assert_eq!((back.counting, back.timeout, back.keepalive), (plan.counting, plan.timeout, plan.keepalive));
    }
}
