//! Replies as a tree of elements: for error documents (read before anything is known of their shape, and
//! possibly cut short), [`Client::call_raw`](crate::Client::call_raw) and callers that want to look around a
//! reply. Typed outputs do not go through the tree: they are read in one pass ([`super::from_str`]).

use std::sync::Arc;

use super::lexer::{Lexer, Token, unescape};
use super::{XmlError, is_entry_name};

/// One XML element: its name without namespace prefix, its text and its child elements (attributes are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlNode {
    name: Arc<str>,
    text: String,
    children: Vec<XmlNode>,
}

impl XmlNode {
    /// A node built by hand (mostly for tests).
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<String>, children: Vec<XmlNode>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            children,
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
fn feed<'a>(body: &'a str, b: &mut TreeBuilder<'a>) -> Result<XmlNode, XmlError> {
    let mut lexer = Lexer::new(body);
    loop {
        let at = lexer.position();
        match lexer.next()? {
            Token::Start { name, local, empty } => {
                b.open(name, local);
                if empty && let Some(root) = b.close() {
                    return Ok(root);
                }
            }
            Token::End { name } => {
                let Some(open) = b.open_qname() else {
                    return Err(Lexer::error(at, "unexpected end tag"));
                };
                lexer.check_end(open, name)?;
                if let Some(root) = b.close() {
                    return Ok(root);
                }
            }
            Token::Text(raw) => b.text(&unescape(raw, at)?),
            Token::CData(raw) => b.text(raw),
            Token::Eof => {
                return Err(if b.open.is_empty() {
                    XmlError::NoRootElement
                } else {
                    Lexer::error(at, "unexpected end of document")
                });
            }
        }
    }
}

/// Builds the tree with few allocations: element names are shared, finished siblings wait in one buffer and
/// move into an exactly-sized `Vec` when their parent closes, and layout whitespace is never stored.
#[derive(Default)]
struct TreeBuilder<'a> {
    /// Open elements: the node (without children yet), where its children start in `done`, and its qualified
    /// name as written (to match the end tag).
    open: Vec<(XmlNode, usize, &'a str)>,
    /// Finished elements whose parent is still open, in document order.
    done: Vec<XmlNode>,
    /// Whitespace-only text seen in the innermost element before any child: content if the element turns out
    /// to be a leaf, layout otherwise.
    pending_ws: String,
    /// Element names (without prefix) seen so far, shared by every element of that name.
    names: std::collections::HashMap<&'a str, Arc<str>>,
}

impl<'a> TreeBuilder<'a> {
    fn open(&mut self, qname: &'a str, local: &'a str) {
        self.pending_ws.clear();
        let name = Arc::clone(self.names.entry(local).or_insert_with(|| Arc::from(local)));
        let node = XmlNode {
            name,
            text: String::new(),
            children: Vec::new(),
        };
        self.open.push((node, self.done.len(), qname));
    }

    /// The qualified name of the innermost open element.
    fn open_qname(&self) -> Option<&'a str> {
        self.open.last().map(|(_, _, qname)| *qname)
    }

    fn text(&mut self, s: &str) {
        let Some((top, start, _)) = self.open.last_mut() else {
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
        let (mut node, start, _) = self.open.pop()?;
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
        if let Some((top, _, _)) = self.open.last_mut() {
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
    root.request_id().map(str::to_owned)
}

impl XmlNode {
    /// Read as a whole reply, its request ID (see [`request_id`]).
    pub fn request_id(&self) -> Option<&str> {
        let node = self
            .child("requestId")
            .or_else(|| self.find_path(&["ResponseMetadata", "RequestId"]))?;
        super::trimmed_id(Some(node.text()))
    }
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
        assert_eq!(root.find_path(&["volumeSet", "item", "size"]).unwrap().text(), "");
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
