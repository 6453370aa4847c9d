//! One cached value and its wire form in Redis.
//!
//! Layer: backend (the `cache` part); it uses nothing of the crate.

use bytes::Bytes;

/// A cached value (or the memory that there is none) with what decides
/// whether it may be served: its logical expiry, the epoch of each of its
/// tags when it was stored, and how long its load took (for early refresh).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `None`: a negative entry.
    pub value: Option<Bytes>,
    /// Unix milliseconds after which the entry is stale.
    pub expires_at_ms: u64,
    /// How long the load that produced it took, in milliseconds.
    pub delta_ms: u32,
    /// Each tag with its epoch at store time.
    pub tags: Vec<(String, u64)>,
}

const VERSION: u8 = 1;
const NEGATIVE: u8 = 1;

impl Entry {
    /// Whether it may be served as fresh at `now_ms`.
    pub fn fresh(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }

    /// Bytes it holds, for the in-process tier's weigher.
    pub fn weight(&self) -> usize {
        64 + self.value.as_ref().map_or(0, Bytes::len)
            + self.tags.iter().map(|(t, _)| t.len() + 16).sum::<usize>()
    }

    /// `version, flags, expires_at_ms (u64 BE), delta_ms (u32 BE), tag count
    /// (u16 BE), per tag: length (u16 BE), bytes, epoch (u64 BE); the value`.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.weight());
        out.push(VERSION);
        out.push(if self.value.is_none() { NEGATIVE } else { 0 });
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&self.delta_ms.to_be_bytes());
        let tags = u16::try_from(self.tags.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&tags.to_be_bytes());
        for (tag, epoch) in self.tags.iter().take(usize::from(tags)) {
            let len = u16::try_from(tag.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&tag.as_bytes()[..usize::from(len)]);
            out.extend_from_slice(&epoch.to_be_bytes());
        }
        if let Some(value) = &self.value {
            out.extend_from_slice(value);
        }
        Bytes::from(out)
    }

    /// The inverse of [`Entry::encode`]; `None` for bytes it did not write.
    pub fn decode(bytes: &Bytes) -> Option<Entry> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let slice = bytes.get(at..at.checked_add(n)?)?;
            at += n;
            Some(slice)
        };
        let head = take(2)?;
        if head[0] != VERSION {
            return None;
        }
        let negative = head[1] & NEGATIVE != 0;
        let expires_at_ms = u64::from_be_bytes(take(8)?.try_into().ok()?);
        let delta_ms = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let count = u16::from_be_bytes(take(2)?.try_into().ok()?);
        let mut tags = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = u16::from_be_bytes(take(2)?.try_into().ok()?);
            let tag = String::from_utf8(take(usize::from(len))?.to_vec()).ok()?;
            let epoch = u64::from_be_bytes(take(8)?.try_into().ok()?);
            tags.push((tag, epoch));
        }
        let value = (!negative).then(|| bytes.slice(at..));
        Some(Entry {
            value,
            expires_at_ms,
            delta_ms,
            tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_garbage_is_refused() {
        let entry = Entry {
            value: Some(Bytes::from_static(b"hello")),
            expires_at_ms: 1_700_000_000_000,
            delta_ms: 12,
            tags: vec![("notes".into(), 3), ("note:1".into(), 0)],
        };
        assert_eq!(Entry::decode(&entry.encode()), Some(entry));
        let negative = Entry {
            value: None,
            expires_at_ms: 5,
            delta_ms: 0,
            tags: Vec::new(),
        };
        assert_eq!(Entry::decode(&negative.encode()), Some(negative));
        assert_eq!(Entry::decode(&Bytes::from_static(b"plain text")), None);
        assert_eq!(Entry::decode(&Bytes::from_static(&[1, 0, 0])), None);
    }
}
