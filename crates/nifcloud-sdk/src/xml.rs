//! Reply parsing: a small, tolerant XML tree and the scalar conversions the generated output types use.
//!
//! The API's replies do not always match the model: element names change case (`AccountingType` for
//! `accountingType`), numbers come typed as strings, numeric and timestamp elements are sent empty
//! (`<size/>`), and timestamps carry offsets (`2024-06-25T16:21:47.000+09:00`). The lookups here therefore
//! compare names ASCII-case-insensitively, empty numbers and timestamps become `None`, surrounding whitespace is
//! ignored for non-string scalars, and unknown elements are skipped.
//!
//! No stray element is read as data:
//! - a list's entries are its `item` and `member` children (the two entry names the API uses); any other child of
//!   a list element (a `<description>` inside `<attachmentSet>`) is skipped, never read as an empty entry;
//! - an element the model reads as one value (a scalar or a structure) that appears again in the same structure
//!   with different contents is an error ([`XmlError::Repeated`]), not "the last one wins"; the same element
//!   repeated with the same contents is read once. A repeated list element adds its entries to the list.
//!
//! [`parse_partial`] reads what it can of a document cut short (a truncated error reply).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use quick_xml::events::Event;
use quick_xml::reader::Reader;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::parsing::Parsed;

/// One XML element: its name without namespace prefix, its text and its child elements (attributes are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlNode {
    name: Arc<str>,
    text: String,
    children: Vec<XmlNode>,
    /// Set by [`parse_struct`] on an element whose name appeared earlier in the same structure with other
    /// contents: what that earlier element held. [`scalar`] and [`parse_struct`] refuse such an element.
    repeats: Option<Box<str>>,
}

impl XmlNode {
    /// A node built by hand (mostly for tests).
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<String>, children: Vec<XmlNode>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            children,
            repeats: None,
        }
    }

    /// The element name, without namespace prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The element's text, entities resolved (empty for elements that have child elements).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// All child elements in document order.
    pub fn elements(&self) -> &[XmlNode] {
        &self.children
    }

    /// The first child element called `name` (ASCII case-insensitive).
    pub fn child(&self, name: &str) -> Option<&XmlNode> {
        self.children.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Every child element called `name` (ASCII case-insensitive).
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a XmlNode> + 'a {
        self.children.iter().filter(move |c| c.name.eq_ignore_ascii_case(name))
    }

    /// Follows `path` one child name at a time from this node (ASCII case-insensitive).
    pub fn find_path(&self, path: &[&str]) -> Option<&XmlNode> {
        path.iter().try_fold(self, |node, name| node.child(name))
    }

    /// The entries of this node read as a list: its `item` and `member` children (ASCII case-insensitive), in
    /// document order. Other children are not entries.
    pub fn entries(&self) -> impl Iterator<Item = &XmlNode> {
        self.children.iter().filter(|c| is_entry_name(&c.name))
    }

    /// Whether this node holds the same text and child elements as `other` (names compared as written).
    fn same_contents(&self, other: &XmlNode) -> bool {
        self.text == other.text && self.children == other.children
    }

    /// The contents in a few words, for error messages: the text (cut at 100 characters), or the number of
    /// child elements.
    fn summary(&self) -> String {
        if self.children.is_empty() {
            self.text.chars().take(100).collect()
        } else {
            format!("<{} child elements>", self.children.len())
        }
    }

    /// The error for an element [`parse_struct`] found repeated with other contents.
    fn repeated_error(&self) -> Option<XmlError> {
        let first = self.repeats.as_deref()?;
        Some(XmlError::Repeated {
            path: self.name().to_owned(),
            first: first.to_owned(),
            again: self.summary(),
        })
    }
}

/// Whether `name` is a list entry's name: `item` (EC2 style) or `member` (ELB style), ASCII case-insensitive.
pub fn is_entry_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("item") || name.eq_ignore_ascii_case("member")
}

/// A reply could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The body is not well-formed XML.
    #[error("malformed XML at byte {position}: {message}")]
    Syntax {
        /// Byte offset where the reader stopped.
        position: u64,
        /// What the XML reader reported.
        message: String,
    },
    /// The body holds no element at all.
    #[error("the reply holds no XML element")]
    NoRootElement,
    /// An element's text is not a valid value of the model's type.
    #[error("element {path}: {value:?} is not a valid {kind}")]
    InvalidValue {
        /// Slash-separated element path, outermost first.
        path: String,
        /// The expected type (`integer`, `boolean`, `double`, `timestamp`).
        kind: &'static str,
        /// The offending text.
        value: String,
    },
    /// An element that holds one value (a scalar or a structure) appears more than once in the same structure
    /// with different contents, so the reply does not say which one holds.
    #[error("element {path} appears more than once with different contents: {first:?}, then {again:?}")]
    Repeated {
        /// Slash-separated element path, outermost first.
        path: String,
        /// The first occurrence's text (or its number of child elements).
        first: String,
        /// The later occurrence's text (or its number of child elements).
        again: String,
    },
}

impl XmlError {
    /// The same error with `parent` prepended to its element path.
    pub fn within(self, parent: &str) -> Self {
        match self {
            XmlError::InvalidValue { path, kind, value } => XmlError::InvalidValue {
                path: format!("{parent}/{path}"),
                kind,
                value,
            },
            XmlError::Repeated { path, first, again } => XmlError::Repeated {
                path: format!("{parent}/{path}"),
                first,
                again,
            },
            other => other,
        }
    }
}

/// A type that can be read from an XML element (every generated output type).
pub trait FromXml: Sized {
    /// Reads the value from `node`, whose child elements are the members.
    fn from_xml(node: &XmlNode) -> Result<Self, XmlError>;
}

/// Parses `body` and returns its root element.
pub fn parse(body: &str) -> Result<XmlNode, XmlError> {
    feed(body, &mut TreeBuilder::default())
}

/// Parses as much of `body` as is well-formed and returns its root element: a document cut short (or broken)
/// after some point keeps every element finished before that point; the elements still open there are closed,
/// and the text of the innermost one, which may be cut, is dropped. `None` when not even the root element was
/// opened. For error replies that arrive truncated: `<Code>` is still read when its end tag arrived.
pub fn parse_partial(body: &str) -> Option<XmlNode> {
    let mut b = TreeBuilder::default();
    match feed(body, &mut b) {
        Ok(root) => Some(root),
        Err(_) => b.finish_truncated(),
    }
}

/// Reads `body` into `b` until the root element closes (returned) or the document fails (`b` keeps what was
/// read so far).
fn feed(body: &str, b: &mut TreeBuilder) -> Result<XmlNode, XmlError> {
    let mut reader = Reader::from_str(body);
    let syntax = |reader: &Reader<&[u8]>, message: String| XmlError::Syntax {
        position: reader.buffer_position(),
        message,
    };
    loop {
        let event = reader.read_event().map_err(|e| syntax(&reader, e.to_string()))?;
        match event {
            Event::Start(e) => {
                let name = b
                    .intern(e.local_name().into_inner())
                    .map_err(|e| syntax(&reader, e.to_string()))?;
                b.open(name);
            }
            Event::Empty(e) => {
                let name = b
                    .intern(e.local_name().into_inner())
                    .map_err(|e| syntax(&reader, e.to_string()))?;
                b.open(name);
                if let Some(root) = b.close() {
                    return Ok(root);
                }
            }
            Event::End(_) => {
                if b.open.is_empty() {
                    return Err(syntax(&reader, "unexpected end tag".into()));
                }
                if let Some(root) = b.close() {
                    return Ok(root);
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| syntax(&reader, e.to_string()))?;
                b.text(&s);
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| syntax(&reader, e.to_string()))?;
                b.text(&s);
            }
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => b.text(c.encode_utf8(&mut [0u8; 4])),
                        Ok(None) => {}
                        Err(e) => return Err(syntax(&reader, e.to_string())),
                    }
                } else {
                    let name = r.decode().map_err(|e| syntax(&reader, e.to_string()))?;
                    match &*name {
                        "amp" => b.text("&"),
                        "lt" => b.text("<"),
                        "gt" => b.text(">"),
                        "quot" => b.text("\""),
                        "apos" => b.text("'"),
                        // Unknown entity: keep it as written rather than fail the whole reply.
                        other => b.text(&format!("&{other};")),
                    }
                }
            }
            Event::Eof => {
                return Err(if b.open.is_empty() {
                    XmlError::NoRootElement
                } else {
                    syntax(&reader, "unexpected end of document".into())
                });
            }
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) | Event::Comment(_) => {}
        }
    }
}

/// Builds the tree with few allocations: element names are shared, finished siblings wait in one buffer and
/// move into an exactly-sized `Vec` when their parent closes, and layout whitespace is never stored.
#[derive(Default)]
struct TreeBuilder {
    /// Open elements: the node (without children yet) and where its children start in `done`.
    open: Vec<(XmlNode, usize)>,
    /// Finished elements whose parent is still open, in document order.
    done: Vec<XmlNode>,
    /// Whitespace-only text seen in the innermost element before any child: content if the element turns out
    /// to be a leaf, layout otherwise.
    pending_ws: String,
    names: std::collections::HashMap<Box<[u8]>, Arc<str>>,
}

impl TreeBuilder {
    fn intern(&mut self, raw: &[u8]) -> Result<Arc<str>, std::str::Utf8Error> {
        if let Some(n) = self.names.get(raw) {
            return Ok(Arc::clone(n));
        }
        let name: Arc<str> = Arc::from(std::str::from_utf8(raw)?);
        self.names.insert(raw.into(), Arc::clone(&name));
        Ok(name)
    }

    fn open(&mut self, name: Arc<str>) {
        self.pending_ws.clear();
        let node = XmlNode {
            name,
            text: String::new(),
            children: Vec::new(),
            repeats: None,
        };
        self.open.push((node, self.done.len()));
    }

    fn text(&mut self, s: &str) {
        let Some((top, start)) = self.open.last_mut() else {
            return;
        };
        let has_children = self.done.len() > *start;
        if s.trim().is_empty() {
            if !has_children {
                if top.text.is_empty() {
                    self.pending_ws.push_str(s);
                } else {
                    top.text.push_str(s);
                }
            }
            return;
        }
        if !self.pending_ws.is_empty() {
            top.text.push_str(&self.pending_ws);
            self.pending_ws.clear();
        }
        top.text.push_str(s);
    }

    /// Closes the innermost element; returns it when it is the root.
    fn close(&mut self) -> Option<XmlNode> {
        let (mut node, start) = self.open.pop()?;
        if self.done.len() > start {
            node.children = self.done.drain(start..).collect();
            node.text = String::new();
        } else if !self.pending_ws.is_empty() {
            node.text.push_str(&self.pending_ws);
        }
        self.pending_ws.clear();
        if self.open.is_empty() {
            return Some(node);
        }
        self.done.push(node);
        None
    }

    /// Closes every element still open after the document stopped short; the innermost one's text, which may be
    /// cut, is dropped. Returns the root, if one was opened.
    fn finish_truncated(&mut self) -> Option<XmlNode> {
        self.pending_ws.clear();
        if let Some((top, _)) = self.open.last_mut() {
            top.text.clear();
        }
        while !self.open.is_empty() {
            if let Some(root) = self.close() {
                return Some(root);
            }
        }
        None
    }
}

/// The request ID of a reply: `requestId` (EC2 style), `ResponseMetadata/RequestId` (ELB style) or
/// `RequestID`/`RequestId` (error documents), trimmed; `None` when absent or empty.
pub fn request_id(root: &XmlNode) -> Option<String> {
    let node = root
        .child("requestId")
        .or_else(|| root.find_path(&["ResponseMetadata", "RequestId"]))?;
    let id = node.text().trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// A scalar type the generated code reads from an element's text.
pub trait XmlScalar: Sized {
    /// The type's name in error messages.
    const KIND: &'static str;
    /// Converts the element text; `Ok(None)` for an empty value, `Err(())` for an invalid one.
    #[allow(clippy::result_unit_err)]
    fn from_text(text: &str) -> Result<Option<Self>, ()>;
}

impl XmlScalar for String {
    const KIND: &'static str = "string";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        Ok(Some(text.to_owned()))
    }
}

impl XmlScalar for i64 {
    const KIND: &'static str = "integer";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse().map(Some).map_err(|_| ())
    }
}

impl XmlScalar for f64 {
    const KIND: &'static str = "double";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse().map(Some).map_err(|_| ())
    }
}

impl XmlScalar for bool {
    const KIND: &'static str = "boolean";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        let t = text.trim();
        if t.is_empty() {
            Ok(None)
        } else if t.eq_ignore_ascii_case("true") || t == "1" {
            Ok(Some(true))
        } else if t.eq_ignore_ascii_case("false") || t == "0" {
            Ok(Some(false))
        } else {
            Err(())
        }
    }
}

impl XmlScalar for Timestamp {
    const KIND: &'static str = "timestamp";
    fn from_text(text: &str) -> Result<Option<Self>, ()> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        Timestamp::parse(t).map(Some).map_err(|_| ())
    }
}

/// Reads a scalar member from `node`'s text (`None` for empty numbers, booleans and timestamps). An element
/// [`parse_struct`] found repeated with other contents is [`XmlError::Repeated`].
pub fn scalar<T: XmlScalar>(node: &XmlNode) -> Result<Option<T>, XmlError> {
    if let Some(e) = node.repeated_error() {
        return Err(e);
    }
    convert(node)
}

fn convert<T: XmlScalar>(node: &XmlNode) -> Result<Option<T>, XmlError> {
    T::from_text(node.text()).map_err(|()| XmlError::InvalidValue {
        path: node.name().to_owned(),
        kind: T::KIND,
        value: node.text().to_owned(),
    })
}

/// Reads a list of structures: each `item` or `member` child of `node` is one entry ([`XmlNode::entries`]);
/// other children are skipped.
pub fn list<T: FromXml>(node: &XmlNode) -> Result<Vec<T>, XmlError> {
    skip_strays(node);
    node.entries()
        .map(T::from_xml)
        .collect::<Result<_, _>>()
        .map_err(|e| e.within(node.name()))
}

/// Reads a list of scalars: each `item` or `member` child of `node` is one entry ([`XmlNode::entries`]); other
/// children are skipped, and so are empty numbers.
pub fn scalar_list<T: XmlScalar>(node: &XmlNode) -> Result<Vec<T>, XmlError> {
    skip_strays(node);
    let mut out = Vec::with_capacity(node.elements().len());
    for child in node.entries() {
        if let Some(v) = convert(child).map_err(|e| e.within(node.name()))? {
            out.push(v);
        }
    }
    Ok(out)
}

/// Logs the children of the list element `node` that are not entries (they are not read).
fn skip_strays(node: &XmlNode) {
    for stray in node.children.iter().filter(|c| !is_entry_name(&c.name)) {
        tracing::debug!(
            list = node.name(),
            element = stray.name(),
            "skipping an element that is not a list entry"
        );
    }
}

/// Reads a structure: `f` is called once per child element with the element's name in ASCII lower case
/// (names longer than 64 bytes are passed as `""`, so no member matches them).
///
/// A child whose name (ASCII case-insensitive) already appeared with other contents is passed marked as a
/// repeat: read as a scalar or a structure it is [`XmlError::Repeated`], read as a list its entries are added.
/// A child repeated with the same contents is passed as is. `node` itself, if marked, is refused.
pub fn parse_struct<T: Default>(
    node: &XmlNode,
    mut f: impl FnMut(&mut T, &str, &XmlNode) -> Result<(), XmlError>,
) -> Result<T, XmlError> {
    if let Some(e) = node.repeated_error() {
        return Err(e);
    }
    let mut out = T::default();
    let mut buf = [0u8; 64];
    for (i, child) in node.children.iter().enumerate() {
        let lower = lower_name(child.name(), &mut buf);
        let earlier = node.children[..i]
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&child.name))
            .filter(|c| !c.same_contents(child));
        let result = match earlier {
            None => f(&mut out, lower, child),
            Some(first) => {
                let marked = XmlNode {
                    repeats: Some(first.summary().into()),
                    ..child.clone()
                };
                f(&mut out, lower, &marked)
            }
        };
        result.map_err(|e| e.within(node.name()))?;
    }
    Ok(out)
}

fn lower_name<'b>(name: &str, buf: &'b mut [u8; 64]) -> &'b str {
    let bytes = name.as_bytes();
    let Some(dst) = buf.get_mut(..bytes.len()) else {
        return "";
    };
    for (d, s) in dst.iter_mut().zip(bytes) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(dst).unwrap_or("")
}

/// A point in time as the API sent it, offset kept (`2024-06-25T16:21:47.000+09:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub OffsetDateTime);

/// A text is not a timestamp this SDK understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a timestamp (expected YYYY-MM-DD[Thh:mm[:ss[.f]]][Z|±hh:mm])")]
pub struct TimestampError(pub String);

/// Every form [`Timestamp::parse`] accepts: the date with `-` or `/`, then optionally `T`, `t` or a space and
/// `hh:mm[:ss[.fraction]]` (`.` or `,` before the fraction), then optionally `Z`, `z` or `±hh[[:]mm]`.
const TIMESTAMP_FORMAT: &[BorrowedFormatItem<'_>] = format_description!(
    version = 2,
    "[first [[year]-[month]-[day]] [[year]/[month]/[day]]]\
     [optional [[first [T] [t] [ ]][hour]:[minute][optional [:[second][optional [[first [.] [,]][subsecond]]]]]]]\
     [optional [[first [Z] [z] [[offset_hour sign:mandatory][optional [[optional [:]][offset_minute]]]]]]]"
);

impl Timestamp {
    /// Parses `YYYY-MM-DD`, optionally followed by `T` (or a space) and `hh:mm[:ss[.fraction]]`, optionally
    /// followed by `Z` or an offset `±hh[:mm]`/`±hhmm`. A missing time means midnight, a missing offset UTC.
    /// `/` may separate the date. Surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        parse_timestamp(s.trim()).ok_or_else(|| TimestampError(s.to_owned()))
    }

    /// The instant as a `time` value.
    pub fn into_inner(self) -> OffsetDateTime {
        self.0
    }

    /// Seconds since the Unix epoch.
    pub fn unix_timestamp(&self) -> i64 {
        self.0.unix_timestamp()
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp(t)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with the original offset, e.g. `2024-06-25T16:21:47+09:00` (fraction only when not zero, `Z` for
    /// UTC). A value RFC 3339 cannot hold (a year outside 0–9999 or an offset with seconds, which no parsed
    /// timestamp has) is shown in `time`'s own notation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn parse_timestamp(s: &str) -> Option<Timestamp> {
    // `time` reads a sign before the year (`-2024-06-25`); the API never sends one.
    if s.starts_with(['+', '-']) {
        return None;
    }
    let mut parsed = Parsed::new();
    let rest = parsed.parse_items(s.as_bytes(), TIMESTAMP_FORMAT).ok()?;
    if !rest.is_empty() {
        return None;
    }
    if parsed.hour_24().is_none() {
        parsed = parsed.with_hour_24(0)?;
    }
    if parsed.offset_hour().is_none() {
        parsed = parsed.with_offset_hour(0)?;
    }
    OffsetDateTime::try_from(parsed).ok().map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tree_with_namespaces_entities_and_empty_elements() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<n:DescribeVolumesResponse xmlns:n="https://computing.api.nifcloud.com/api/">
  <requestId> 5ec8 </requestId>
  <volumeSet>
    <item><volumeId>a&amp;b&#x41;</volumeId><size/><x><![CDATA[<raw>]]></x></item>
    <ITEM><VolumeId>c</VolumeId></ITEM>
  </volumeSet>
</n:DescribeVolumesResponse>"#;
        let root = parse(body).unwrap();
        assert_eq!(root.name(), "DescribeVolumesResponse");
        assert_eq!(request_id(&root).as_deref(), Some("5ec8"));
        let set = root.child("VOLUMESET").unwrap();
        assert_eq!(set.text(), "");
        assert_eq!(set.children("item").count(), 2);
        assert_eq!(
            root.find_path(&["volumeSet", "item", "volumeid"]).unwrap().text(),
            "a&bA"
        );
        assert_eq!(root.find_path(&["volumeSet", "item", "x"]).unwrap().text(), "<raw>");
        assert_eq!(
            scalar::<i64>(root.find_path(&["volumeSet", "item", "size"]).unwrap()),
            Ok(None)
        );
        assert!(root.find_path(&["volumeSet", "nope"]).is_none());
    }

    #[test]
    fn whitespace_is_content_in_leaves_and_layout_between_children() {
        let root = parse("<r>\n  <a> </a>\n  <b> x &amp; y </b>\n  <c>  &lt;</c><d>\n<e/>\n</d></r>").unwrap();
        assert_eq!(root.text(), "");
        assert_eq!(root.child("a").unwrap().text(), " ");
        assert_eq!(root.child("b").unwrap().text(), " x & y ");
        assert_eq!(root.child("c").unwrap().text(), "  <");
        assert_eq!(root.child("d").unwrap().text(), "");
        assert_eq!(root.find_path(&["d", "e"]).unwrap().elements().len(), 0);
        assert_eq!(root.elements().len(), 4);
    }

    #[test]
    fn request_id_in_all_three_places() {
        let elb = parse("<R><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></R>").unwrap();
        assert_eq!(request_id(&elb).as_deref(), Some("r1"));
        let err = parse("<Response><Errors><Error><Code>C</Code></Error></Errors><RequestID>r2</RequestID></Response>")
            .unwrap();
        assert_eq!(request_id(&err).as_deref(), Some("r2"));
        assert_eq!(request_id(&parse("<R/>").unwrap()), None);
    }

    #[test]
    fn rejects_malformed_documents() {
        assert!(matches!(parse("<a><b></a>"), Err(XmlError::Syntax { .. })));
        assert!(matches!(parse("<a><b>"), Err(XmlError::Syntax { .. })));
        assert_eq!(parse("   "), Err(XmlError::NoRootElement));
    }

    #[test]
    fn scalars_are_tolerant_but_not_silent() {
        let n = |t: &str| XmlNode::new("size", t, vec![]);
        assert_eq!(scalar::<i64>(&n(" 100 \n")), Ok(Some(100)));
        assert_eq!(scalar::<i64>(&n("")), Ok(None));
        assert_eq!(scalar::<bool>(&n("true")), Ok(Some(true)));
        assert_eq!(scalar::<bool>(&n("")), Ok(None));
        assert_eq!(scalar::<f64>(&n("1.5")), Ok(Some(1.5)));
        assert_eq!(scalar::<String>(&n(" x ")), Ok(Some(" x ".to_owned())));
        let err = scalar::<i64>(&n("ten")).unwrap_err().within("item").within("volumeSet");
        assert_eq!(
            err.to_string(),
            "element volumeSet/item/size: \"ten\" is not a valid integer"
        );
    }

    #[test]
    fn timestamps_with_offsets_fractions_and_without_zone() {
        let t = Timestamp::parse("2024-06-25T16:21:47.000+09:00").unwrap();
        assert_eq!(t.unix_timestamp(), 1_719_300_107);
        assert_eq!(t.to_string(), "2024-06-25T16:21:47+09:00");
        assert_eq!(Timestamp::parse("2024-06-25T07:21:47Z").unwrap(), t);
        assert_eq!(Timestamp::parse("2024-06-25 07:21:47").unwrap(), t);
        assert_eq!(
            Timestamp::parse("2024-06-25T07:21:47.5Z").unwrap().to_string(),
            "2024-06-25T07:21:47.5Z"
        );
        assert_eq!(Timestamp::parse("2024-06-25T01:21:47-0600").unwrap(), t);
        assert_eq!(
            Timestamp::parse("2024/06/25").unwrap().to_string(),
            "2024-06-25T00:00:00Z"
        );
        assert_eq!(
            Timestamp::parse("2024-06-25t07:21z").unwrap().to_string(),
            "2024-06-25T07:21:00Z"
        );
        assert_eq!(
            Timestamp::parse("2024-06-25T07:21:47,25-00:30").unwrap().to_string(),
            "2024-06-25T07:21:47.25-00:30"
        );
        assert_eq!(Timestamp::parse(" 2024-06-25T16:21:47+09 ").unwrap(), t);
        for bad in [
            "2024-13-25",
            "yesterday",
            "2024-06-25T07:21:47Zjunk",
            "2024-06/25",
            "-2024-06-25",
            "2024-06-25T07",
            "2024-06-25T07:21:47.Z",
        ] {
            assert_eq!(Timestamp::parse(bad), Err(TimestampError(bad.to_owned())), "{bad}");
        }
    }

    #[derive(Debug, Default, PartialEq)]
    struct Vol {
        id: Option<String>,
        size: Option<i64>,
        tags: Vec<String>,
    }

    impl FromXml for Vol {
        fn from_xml(node: &XmlNode) -> Result<Self, XmlError> {
            parse_struct(node, |out: &mut Self, name, child| {
                match name {
                    "volumeid" => out.id = scalar(child)?,
                    "size" => out.size = scalar(child)?,
                    "tagset" => out.tags = scalar_list(child)?,
                    _ => {}
                }
                Ok(())
            })
        }
    }

    #[test]
    fn struct_and_list_helpers_match_names_case_insensitively() {
        let root = parse("<r><set><item><VOLUMEID>v</VOLUMEID><size>2</size><tagSet><item>a</item><item>b</item></tagSet><unknown/></item></set></r>")
            .unwrap();
        let vols: Vec<Vol> = list(root.child("set").unwrap()).unwrap();
        assert_eq!(
            vols,
            vec![Vol {
                id: Some("v".into()),
                size: Some(2),
                tags: vec!["a".into(), "b".into()]
            }]
        );
        let bad = parse("<r><set><item><size>x</size></item></set></r>").unwrap();
        let err = list::<Vol>(bad.child("set").unwrap()).unwrap_err();
        assert!(err.to_string().contains("set/item/size"), "{err}");
    }

    #[derive(Debug, Default, PartialEq)]
    struct Attachment {
        instance: Option<String>,
        status: Option<String>,
    }

    impl FromXml for Attachment {
        fn from_xml(node: &XmlNode) -> Result<Self, XmlError> {
            parse_struct(node, |out: &mut Self, name, child| {
                match name {
                    "instanceid" => out.instance = scalar(child)?,
                    "status" => out.status = scalar(child)?,
                    _ => {}
                }
                Ok(())
            })
        }
    }

    #[derive(Debug, Default, PartialEq)]
    struct Disk {
        size: Option<i64>,
        state: Option<Attachment>,
        attachments: Vec<Attachment>,
        zones: Vec<String>,
    }

    impl FromXml for Disk {
        fn from_xml(node: &XmlNode) -> Result<Self, XmlError> {
            parse_struct(node, |out: &mut Self, name, child| {
                match name {
                    "size" => out.size = scalar(child)?,
                    "state" => out.state = Some(Attachment::from_xml(child)?),
                    "attachmentset" => out.attachments.extend(list::<Attachment>(child)?),
                    "zones" => out.zones.extend(scalar_list::<String>(child)?),
                    _ => {}
                }
                Ok(())
            })
        }
    }

    fn disk(body: &str) -> Result<Disk, XmlError> {
        Disk::from_xml(&parse(body).unwrap())
    }

    #[test]
    fn a_stray_sibling_inside_a_list_is_never_an_entry() {
        // Without the rule, <description> would be read as an attachment with every field empty: an
        // attachment to no server.
        let d = disk("<d><attachmentSet><description>boot disk</description></attachmentSet></d>").unwrap();
        assert_eq!(d.attachments, vec![]);
        let d = disk(
            "<d><attachmentSet><description/><item><instanceId>n1</instanceId><status>attached</status></item>\
             <Item><instanceId>n2</instanceId></Item><note>x</note></attachmentSet></d>",
        )
        .unwrap();
        assert_eq!(
            d.attachments,
            vec![
                Attachment {
                    instance: Some("n1".into()),
                    status: Some("attached".into())
                },
                Attachment {
                    instance: Some("n2".into()),
                    status: None
                },
            ]
        );
        // Scalar lists too: `member` entries only.
        let d =
            disk("<d><zones><member>east-11</member><comment>x</comment><MEMBER>east-12</MEMBER></zones></d>").unwrap();
        assert_eq!(d.zones, vec!["east-11".to_owned(), "east-12".to_owned()]);
        let root = parse("<l><item/><member/><other/></l>").unwrap();
        assert_eq!(root.entries().count(), 2);
        assert!(is_entry_name("ITEM") && is_entry_name("Member") && !is_entry_name("items"));
    }

    #[test]
    fn a_repeated_scalar_with_other_contents_is_an_error_not_last_one_wins() {
        let err = disk("<d><size>100</size><size>200</size></d>").unwrap_err();
        assert_eq!(
            err,
            XmlError::Repeated {
                path: "d/size".into(),
                first: "100".into(),
                again: "200".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "element d/size appears more than once with different contents: \"100\", then \"200\""
        );
        // Names match case-insensitively, so a differently cased repeat is a repeat too; an empty one counts.
        assert!(matches!(
            disk("<d><size>100</size><SIZE/></d>"),
            Err(XmlError::Repeated { .. })
        ));
        // The same value twice is read once.
        assert_eq!(disk("<d><size>100</size><size>100</size></d>").unwrap().size, Some(100));
        // Inside a list entry the path names the entry.
        let err = disk(
            "<d><attachmentSet><item><status>attached</status><status>detaching</status></item></attachmentSet></d>",
        )
        .unwrap_err();
        assert!(
            matches!(&err, XmlError::Repeated { path, .. } if path == "d/attachmentSet/item/status"),
            "{err}"
        );
    }

    #[test]
    fn a_repeated_structure_is_an_error_and_a_repeated_list_adds_its_entries() {
        let err = disk("<d><state><status>a</status></state><state><status>b</status></state></d>").unwrap_err();
        assert_eq!(
            err,
            XmlError::Repeated {
                path: "d/state".into(),
                first: "<1 child elements>".into(),
                again: "<1 child elements>".into()
            }
        );
        let d = disk(
            "<d><attachmentSet><item><instanceId>n1</instanceId></item></attachmentSet>\
             <attachmentSet><item><instanceId>n2</instanceId></item></attachmentSet></d>",
        )
        .unwrap();
        let names: Vec<_> = d.attachments.iter().filter_map(|a| a.instance.as_deref()).collect();
        assert_eq!(names, ["n1", "n2"]);
        // Unknown elements may repeat: nothing reads them.
        assert_eq!(disk("<d><x>1</x><x>2</x><size>5</size></d>").unwrap().size, Some(5));
    }

    #[test]
    fn a_truncated_document_keeps_what_was_finished() {
        let full = "<Response><Errors><Error><Code>Client.InvalidParameterNotFound.Volume</Code>\
                    <Message>The VolumeId 'x' does not exist.</Message></Error></Errors><RequestID>r1</RequestID></Response>";
        assert_eq!(parse_partial(full), parse(full).ok());
        let cut = &full[..full.find("<Message>").unwrap() + 20];
        assert!(parse(cut).is_err());
        let root = parse_partial(cut).unwrap();
        let error = root.find_path(&["Errors", "Error"]).unwrap();
        assert_eq!(
            error.child("Code").unwrap().text(),
            "Client.InvalidParameterNotFound.Volume"
        );
        assert_eq!(error.child("Message").unwrap().text(), "", "a cut text is dropped");
        // Cut inside the code: the code is not read.
        let cut = &full[..full.find("NotFound").unwrap()];
        let root = parse_partial(cut).unwrap();
        assert_eq!(root.find_path(&["Errors", "Error", "Code"]).unwrap().text(), "");
        // Cut inside a tag, or broken by a wrong end tag.
        let root = parse_partial("<Response><Errors><Error><Code>C</Code><Mess").unwrap();
        assert_eq!(root.find_path(&["Errors", "Error", "Code"]).unwrap().text(), "C");
        let root = parse_partial("<R><a>1</a><b>2</c></R>").unwrap();
        assert_eq!(
            (root.child("a").unwrap().text(), root.child("b").unwrap().text()),
            ("1", "")
        );
        assert_eq!(parse_partial("no XML here"), None);
        assert_eq!(parse_partial(""), None);
    }
}
