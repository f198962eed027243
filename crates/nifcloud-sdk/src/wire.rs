//! Request encoding: the ordered list of form parameters of one call, RFC 3986 percent-encoding and the
//! `application/x-www-form-urlencoded` body.
//!
//! The generated input types write themselves into a [`Params`] through [`ToParams`]; the client then adds
//! `Action`, `Version` and the signature fields and encodes the whole list with [`form_body`].

use std::fmt::Write as _;

/// The ordered form parameters of one request (`key=value` pairs, insertion order kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// An empty parameter list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty parameter list with room for `capacity` pairs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            pairs: Vec::with_capacity(capacity),
        }
    }

    /// Appends one `key=value` pair (keys may repeat; nothing is replaced).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((key.into(), value.into()));
    }

    /// The pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is no pair at all.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The value of the first pair whose key is exactly `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The pairs, consuming the list.
    pub fn into_inner(self) -> Vec<(String, String)> {
        self.pairs
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = (&'a str, &'a str);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, String)>, fn(&'a (String, String)) -> (&'a str, &'a str)>;

    fn into_iter(self) -> Self::IntoIter {
        fn as_strs(pair: &(String, String)) -> (&str, &str) {
            (pair.0.as_str(), pair.1.as_str())
        }
        self.pairs.iter().map(as_strs)
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Percent-encodes `s` as RFC 3986 asks: only `A-Za-z0-9-_.~` stay as they are, every other byte of the UTF-8
/// form becomes `%XX` (upper-case hex), so a space is `%20`.
pub fn encode_rfc3986(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    encode_rfc3986_into(&mut out, s);
    out
}

/// Like [`encode_rfc3986`], appending to `out` instead of allocating.
pub fn encode_rfc3986_into(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// The `application/x-www-form-urlencoded` body of `params`, in their order (spaces are sent as `%20`).
pub fn form_body(params: &Params) -> String {
    let mut out = String::with_capacity(params.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>() + 16);
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_rfc3986_into(&mut out, k);
        out.push('=');
        encode_rfc3986_into(&mut out, v);
    }
    out
}

/// A value that writes itself into a [`Params`] under a key prefix (a scalar writes one pair at `key`; a
/// structure writes each of its set members under `key.Member`).
///
/// The generated input types implement it; callers normally go through
/// [`Operation::serialize`](crate::operation::Operation::serialize).
pub trait ToParams {
    /// Writes this value under `key` (which the implementation may extend but must restore).
    fn to_params(&self, out: &mut Params, key: &mut String);

    /// The wire path (relative to this value) of the first required member that is not set, if any.
    fn missing_required(&self) -> Option<String> {
        None
    }
}

impl ToParams for String {
    fn to_params(&self, out: &mut Params, key: &mut String) {
        out.push(key.as_str(), self.as_str());
    }
}

impl ToParams for compact_str::CompactString {
    fn to_params(&self, out: &mut Params, key: &mut String) {
        out.push(key.as_str(), self.as_str());
    }
}

impl ToParams for i64 {
    fn to_params(&self, out: &mut Params, key: &mut String) {
        out.push(key.as_str(), self.to_string());
    }
}

impl ToParams for bool {
    fn to_params(&self, out: &mut Params, key: &mut String) {
        out.push(key.as_str(), if *self { "true" } else { "false" });
    }
}

impl ToParams for f64 {
    /// Written the way Python's `str(float)` writes it for ordinary values (`1.5`, `2.0`).
    fn to_params(&self, out: &mut Params, key: &mut String) {
        out.push(key.as_str(), format!("{self:?}"));
    }
}

/// Runs `f` with `key` extended by `.name` (or set to `name` when `key` is empty), then restores `key`.
pub fn with_member(key: &mut String, name: &str, f: impl FnOnce(&mut String)) {
    let len = key.len();
    if len > 0 {
        key.push('.');
    }
    key.push_str(name);
    f(key);
    key.truncate(len);
}

/// Writes an optional member `name` (nothing when it is `None`).
pub fn member<T: ToParams>(out: &mut Params, key: &mut String, name: &str, value: &Option<T>) {
    if let Some(v) = value {
        with_member(key, name, |k| v.to_params(out, k));
    }
}

/// Writes a list member EC2 style: `Name.1`, `Name.2`, ... (nothing for an empty list).
pub fn list_ec2<T: ToParams>(out: &mut Params, key: &mut String, name: &str, items: &[T]) {
    list_with(out, key, name, None, items);
}

/// Writes a list member query style: `Name.<item>.1`, `Name.<item>.2`, ... where `<item>` is the list
/// member's wire name, normally `member` (nothing for an empty list; the Python SDK would send `Name=`).
pub fn list_query<T: ToParams>(out: &mut Params, key: &mut String, name: &str, item: &str, items: &[T]) {
    list_with(out, key, name, Some(item), items);
}

fn list_with<T: ToParams>(out: &mut Params, key: &mut String, name: &str, item: Option<&str>, items: &[T]) {
    if items.is_empty() {
        return;
    }
    with_member(key, name, |k| {
        if let Some(item) = item {
            k.push('.');
            k.push_str(item);
        }
        let base = k.len();
        for (i, v) in items.iter().enumerate() {
            // Writing into a String cannot fail.
            let _ = write!(k, ".{}", i + 1);
            v.to_params(out, k);
            k.truncate(base);
        }
    });
}

/// Joins a member's wire name in front of a nested missing-parameter path.
pub fn nested_path(name: &str, index: Option<(Option<&str>, usize)>, rest: &str) -> String {
    match index {
        None => format!("{name}.{rest}"),
        Some((None, i)) => format!("{name}.{i}.{rest}"),
        Some((Some(item), i)) => format!("{name}.{item}.{i}.{rest}"),
    }
}

/// The first missing required member inside an optional nested structure, as a path under `name`.
pub fn missing_in_member<T: ToParams>(name: &str, value: &Option<T>) -> Option<String> {
    let inner = value.as_ref()?.missing_required()?;
    Some(nested_path(name, None, &inner))
}

/// The first missing required member inside the elements of a list, as a path under `name`.
pub fn missing_in_list<T: ToParams>(name: &str, item: Option<&str>, items: &[T]) -> Option<String> {
    items.iter().enumerate().find_map(|(i, v)| {
        let inner = v.missing_required()?;
        Some(nested_path(name, Some((item, i + 1)), &inner))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3986_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(encode_rfc3986("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(encode_rfc3986("a b/c+d=e&f*"), "a%20b%2Fc%2Bd%3De%26f%2A");
        assert_eq!(encode_rfc3986("日本"), "%E6%97%A5%E6%9C%AC");
        assert_eq!(encode_rfc3986("2026-11-25T20:04:43Z"), "2026-11-25T20%3A04%3A43Z");
    }

    #[test]
    fn form_body_keeps_order_and_encodes_both_sides() {
        let mut p = Params::new();
        p.push("Action", "DescribeVolumes");
        p.push("VolumeId.1", "vol 02/x");
        assert_eq!(form_body(&p), "Action=DescribeVolumes&VolumeId.1=vol%2002%2Fx");
        assert_eq!(p.get("VolumeId.1"), Some("vol 02/x"));
        assert_eq!(p.get("VolumeId.2"), None);
        assert_eq!(p.len(), 2);
        assert!(!p.is_empty());
        assert_eq!(p.into_inner()[0].0, "Action");
    }

    #[test]
    fn list_styles_and_nesting() {
        let mut p = Params::new();
        let mut key = String::new();
        list_ec2(&mut p, &mut key, "InstanceId", &["a".to_string(), "b".to_string()]);
        list_query(&mut p, &mut key, "Zones", "member", &[1i64]);
        member(&mut p, &mut key, "Flag", &Some(true));
        member::<String>(&mut p, &mut key, "Absent", &None);
        list_ec2::<String>(&mut p, &mut key, "Empty", &[]);
        member(&mut p, &mut key, "Threshold", &Some(2.0f64));
        let got: Vec<_> = p.iter().collect();
        assert_eq!(
            got,
            vec![
                ("InstanceId.1", "a"),
                ("InstanceId.2", "b"),
                ("Zones.member.1", "1"),
                ("Flag", "true"),
                ("Threshold", "2.0")
            ]
        );
        assert!(key.is_empty());
    }

    #[test]
    fn nested_paths() {
        assert_eq!(nested_path("A", None, "B"), "A.B");
        assert_eq!(nested_path("A", Some((None, 2)), "B"), "A.2.B");
        assert_eq!(nested_path("A", Some((Some("member"), 1)), "B"), "A.member.1.B");
    }
}
