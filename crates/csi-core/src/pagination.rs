//! Opaque, key-based pagination tokens for ListVolumes / ListSnapshots.
//!
//! A token names the key of the first entry of the next page, so a page boundary survives
//! entries being added or deleted between calls. Items must be sorted by key.

/// Why a page could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaginationError {
    /// `max_entries` was negative.
    #[error("max_entries must not be negative (got {0})")]
    NegativeMaxEntries(i32),
    /// The starting token was not produced by this plugin.
    #[error("starting_token {0:?} is not valid")]
    InvalidToken(String),
}

impl From<PaginationError> for tonic::Status {
    fn from(e: PaginationError) -> Self {
        match e {
            PaginationError::NegativeMaxEntries(_) => tonic::Status::invalid_argument(e.to_string()),
            // The CSI spec asks for ABORTED when the token is not valid.
            PaginationError::InvalidToken(_) => tonic::Status::aborted(e.to_string()),
        }
    }
}

const PREFIX: &str = "k1.";

/// Encodes `key` as an opaque token.
pub fn encode_token(key: &str) -> String {
    let mut out = String::with_capacity(PREFIX.len() + key.len() * 2);
    out.push_str(PREFIX);
    for b in key.as_bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Decodes a token made by [`encode_token`].
pub fn decode_token(token: &str) -> Result<String, PaginationError> {
    let bad = || PaginationError::InvalidToken(token.to_string());
    let hex = token.strip_prefix(PREFIX).ok_or_else(bad)?;
    if hex.len() % 2 != 0 || hex.is_empty() {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// One page of `items` (sorted by `key`) and the token of the next page (empty when done).
pub fn paginate<'a, T>(
    items: &'a [T],
    key: impl Fn(&T) -> &str,
    starting_token: &str,
    max_entries: i32,
) -> Result<(&'a [T], String), PaginationError> {
    if max_entries < 0 {
        return Err(PaginationError::NegativeMaxEntries(max_entries));
    }
    let start = if starting_token.is_empty() {
        0
    } else {
        let from = decode_token(starting_token)?;
        items.partition_point(|i| key(i) < from.as_str())
    };
    let rest = items.get(start..).unwrap_or(&[]);
    if max_entries == 0 || rest.len() <= max_entries as usize {
        return Ok((rest, String::new()));
    }
    let n = max_entries as usize;
    let next = rest.get(n).map(|i| encode_token(key(i))).unwrap_or_default();
    Ok((&rest[..n], next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_all_pages() {
        let items: Vec<String> = (0..7).map(|i| format!("vol-{i}")).collect();
        let mut token = String::new();
        let mut seen = Vec::new();
        loop {
            let (page, next) = paginate(&items, |s| s.as_str(), &token, 3).unwrap();
            assert!(page.len() <= 3);
            seen.extend(page.iter().cloned());
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn survives_deletion_of_boundary_item() {
        let mut items: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let (_, next) = paginate(&items, |s| s.as_str(), "", 2).unwrap();
        items.retain(|s| s != "c");
        let (page, done) = paginate(&items, |s| s.as_str(), &next, 2).unwrap();
        assert_eq!(page, ["d".to_string()]);
        assert!(done.is_empty());
    }

    #[test]
    fn errors() {
        let items = vec!["a".to_string()];
        assert_eq!(
            paginate(&items, |s| s.as_str(), "", -1).unwrap_err(),
            PaginationError::NegativeMaxEntries(-1)
        );
        for bad in ["garbage", "k1.", "k1.zz", "k1.abc", "k1.ff"] {
            let err = paginate(&items, |s| s.as_str(), bad, 1).unwrap_err();
            assert_eq!(tonic::Status::from(err).code(), tonic::Code::Aborted, "{bad}");
        }
        assert_eq!(decode_token(&encode_token("pvc-ü/1")).unwrap(), "pvc-ü/1");
        let (all, next) = paginate(&items, |s| s.as_str(), "", 0).unwrap();
        assert_eq!((all.len(), next.as_str()), (1, ""));
    }
}
