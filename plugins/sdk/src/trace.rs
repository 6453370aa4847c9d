//! Spans from plugin code, in the request's trace: children of the host's
//! span of the call, exported and stored with it. No grant is needed.
//!
//! ```no_run
//! use trellis_sdk::trace;
//!
//! let total = trace::in_span("price.compute", |span| {
//!     span.set("items", 3);
//!     let lookup = span.child("price.lookup");
//!     lookup.event("cache miss", &[("key", "sku-1")]);
//!     42
//! });
//! ```

use std::fmt::Display;

use crate::bindings::trellis::plugin::trace::Span as RawSpan;

/// An open span; it ends when dropped (or with [`Span::end`]).
#[derive(Debug)]
pub struct Span {
    raw: RawSpan,
}

impl Span {
    /// Opens a span under the call's span.
    pub fn start(name: &str) -> Span {
        Span {
            raw: RawSpan::new(name, None),
        }
    }

    /// Opens a span under this one.
    pub fn child(&self, name: &str) -> Span {
        Span {
            raw: RawSpan::new(name, Some(&self.raw)),
        }
    }

    /// Sets an attribute.
    pub fn set(&self, key: &str, value: impl Display) -> &Self {
        self.raw.set_attribute(key, &value.to_string());
        self
    }

    /// Records an event with attributes.
    pub fn event(&self, name: &str, attributes: &[(&str, &str)]) -> &Self {
        let attributes: Vec<(String, String)> = attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.raw.add_event(name, &attributes);
        self
    }

    /// Marks the span failed.
    pub fn error(&self, message: impl Display) -> &Self {
        self.raw.set_error(&message.to_string());
        self
    }

    /// Ends the span now.
    pub fn end(self) {
        self.raw.end();
    }
}

/// Runs `f` inside a span named `name`; the span ends when `f` returns.
pub fn in_span<T>(name: &str, f: impl FnOnce(&Span) -> T) -> T {
    let span = Span::start(name);
    f(&span)
}
