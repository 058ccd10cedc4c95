//! Health endpoints on the hub's own port: plain `GET`s answered with JSON
//! (`/health/failure-stats`, `/health/retry-config`, field names as in the
//! seed) and Prometheus text (`/metrics`). Paths come from the config.

use std::fmt::Write as _;

use super::Hub;

const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Whether `path` is one of the enabled health or metrics paths.
    pub(super) fn is_health_path(&self, path: &str) -> bool {
        let h = &self.config.health;
        h.enabled
            && (path == h.failure_stats_path
                || path == h.retry_config_path
                || path == h.metrics_path)
    }

    /// The body for a health path, if `path` is one and they are enabled.
    pub(super) fn health_response(&self, path: &str) -> Option<(&'static str, String)> {
        let health = &self.config.health;
        if !health.enabled {
            return None;
        }
        if path == health.failure_stats_path {
            let body = serde_json::to_string(&self.failure_stats()).ok()?;
            Some((JSON, body))
        } else if path == health.retry_config_path {
            let body = serde_json::to_string(&self.config.retry_config_view()).ok()?;
            Some((JSON, body))
        } else if path == health.metrics_path {
            Some((PROMETHEUS, self.prometheus()))
        } else {
            None
        }
    }

    /// The seed's failure statistics, plus the hub's own counters.
    fn failure_stats(&self) -> serde_json::Value {
        let s = self.stats();
        let mut v = serde_json::to_value(&s).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "uptime_seconds".into(),
                self.started.elapsed().as_secs_f64().into(),
            );
            if let Some(c) = &self.cluster {
                obj.insert(
                    "cluster".into(),
                    serde_json::json!({
                        "state": c.state().as_str(),
                        "node_id": &*c.node,
                        "presence_ttl_ms": c.ttl.as_millis() as u64,
                    }),
                );
            }
        }
        v
    }

    fn prometheus(&self) -> String {
        let s = self.stats();
        let mut out = String::with_capacity(2048);
        let v = serde_json::to_value(&s).unwrap_or_default();
        if let Some(obj) = v.as_object() {
            for (name, value) in obj {
                let kind = if matches!(
                    name.as_str(),
                    "connections"
                        | "users"
                        | "queued"
                        | "pending_deliveries"
                        | "handler_backlog"
                        | "offline_held"
                        | "offline_bytes"
                        | "acks_in_flight"
                        | "groups"
                        | "memberships"
                        | "sticky_memberships"
                        | "cluster_up"
                        | "cluster_nodes"
                        | "cluster_remote_devices"
                ) {
                    "gauge"
                } else {
                    "counter"
                };
                let _ = writeln!(out, "# TYPE wshub_{name} {kind}");
                let _ = writeln!(out, "wshub_{name} {value}");
            }
        }
        let _ = writeln!(out, "# TYPE wshub_uptime_seconds gauge");
        let _ = writeln!(
            out,
            "wshub_uptime_seconds {}",
            self.started.elapsed().as_secs_f64()
        );
        out
    }
}
