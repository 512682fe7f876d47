//! Registration helpers shared by the metric families (`metrics`, `fleet_metrics`).

use prometheus::Registry;

/// Metric definitions are compile-time constants; a failure here is a programming error
/// caught by the unit tests of `metrics`, never by user input.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn bug(name: &str, e: prometheus::Error) -> ! {
    panic!("metric {name} is malformed: {e}")
}

pub(crate) fn reg(r: &Registry, name: &str, c: Box<dyn prometheus::core::Collector>) {
    if let Err(e) = r.register(c) {
        bug(name, e)
    }
}
