//! One-pass reading of a reply straight into the generated output types.
//!
//! The generated [`FromXml::read_xml`] of each structure walks its element's children with
//! [`XmlReader::read_struct`] and hands each member to [`XmlReader::scalar`], [`XmlReader::structure`],
//! [`XmlReader::list`] or [`XmlReader::scalar_list`]; unknown members go to [`XmlReader::skip`]. No tree is
//! built: element names and texts are borrowed from the reply, and the only allocations are the output's own
//! strings and vectors (plus a text holding an entity or split by a comment).
//!
//! The rules are those the module documents: names compare ASCII-case-insensitively, a list's entries are its
//! `item`/`member` children, a value repeated with another value is [`XmlError::Repeated`], a repeated list adds
//! its entries.

use std::borrow::Cow;
use std::fmt::Debug;

use super::lexer::{Lexer, Token, unescape};
use super::{FromXml, XmlError, XmlScalar, is_entry_name};

/// The longest element name matched against members; longer names match none (and are skipped).
const MAX_NAME: usize = 64;

/// What reads one member of a structure: gets the reader, the member's name in ASCII lower case and its element.
type ReadMember<'r, 'a> = dyn FnMut(&mut XmlReader<'a>, &[u8], &Element<'a>) -> Result<(), XmlError> + 'r;

/// What reads one entry of a list: gets the reader and the entry's element.
type ReadEntry<'r, 'a> = dyn FnMut(&mut XmlReader<'a>, &Element<'a>) -> Result<(), XmlError> + 'r;

/// An element whose start tag the reader has just read: its name, and whether it was self-closing (`<size/>`).
#[derive(Debug, Clone, Copy)]
pub struct Element<'a> {
    /// The qualified name as written (`n:item`), to match the end tag.
    qname: &'a str,
    /// The name without namespace prefix (`item`).
    name: &'a str,
    empty: bool,
}

impl<'a> Element<'a> {
    /// The element name without namespace prefix.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Whether the element was written self-closing, so it has no content to read.
    pub fn is_empty(&self) -> bool {
        self.empty
    }
}

/// A pull reader over one reply, positioned between elements. Built by [`super::from_str`]; the generated
/// code drives it.
pub struct XmlReader<'a> {
    lexer: Lexer<'a>,
    /// The elements [`XmlReader::skip`] has opened and not yet closed (kept to reuse its allocation).
    skipping: Vec<&'a str>,
}

impl<'a> XmlReader<'a> {
    /// A reader at the start of `body`.
    pub fn new(body: &'a str) -> Self {
        Self {
            lexer: Lexer::new(body),
            skipping: Vec::new(),
        }
    }

    /// The next token inside an open element: the end of the document is an error there.
    #[inline(always)]
    fn token(&mut self) -> Result<Token<'a>, XmlError> {
        match self.lexer.next()? {
            Token::Eof => Err(Lexer::error(self.lexer.position(), "unexpected end of document")),
            t => Ok(t),
        }
    }

    /// Reads up to the root element's start tag (declaration, comments and layout before it are skipped).
    pub fn root(&mut self) -> Result<Element<'a>, XmlError> {
        loop {
            match self.lexer.next()? {
                Token::Start { name, local, empty } => {
                    return Ok(Element {
                        qname: name,
                        name: local,
                        empty,
                    });
                }
                Token::End { .. } => return Err(Lexer::error(self.lexer.position(), "unexpected end tag")),
                Token::Eof => return Err(XmlError::NoRootElement),
                Token::Text(_) | Token::CData(_) => {}
            }
        }
    }

    /// The next child element of `parent`, or `None` once `parent`'s end tag has been read. Text between
    /// children is layout and is skipped. Each child returned must be consumed (read or skipped) before the next
    /// call.
    pub fn next_child(&mut self, parent: &Element<'a>) -> Result<Option<Element<'a>>, XmlError> {
        self.child(parent)
    }

    /// [`XmlReader::next_child`], inlined into the loops that read structures and lists so that the element
    /// stays in registers.
    #[inline(always)]
    fn child(&mut self, parent: &Element<'a>) -> Result<Option<Element<'a>>, XmlError> {
        if parent.empty {
            return Ok(None);
        }
        loop {
            if self.lexer.eat_end_tag(parent.qname) {
                return Ok(None);
            }
            match self.token()? {
                Token::Start { name, local, empty } => {
                    return Ok(Some(Element {
                        qname: name,
                        name: local,
                        empty,
                    }));
                }
                Token::End { name } => {
                    self.lexer.check_end(parent.qname, name)?;
                    return Ok(None);
                }
                Token::Text(_) | Token::CData(_) | Token::Eof => {}
            }
        }
    }

    /// Skips `el`'s content, up to and including its end tag.
    pub fn skip(&mut self, el: &Element<'a>) -> Result<(), XmlError> {
        if el.empty {
            return Ok(());
        }
        self.skipping.clear();
        self.skipping.push(el.qname);
        while let Some(&open) = self.skipping.last() {
            match self.token()? {
                Token::Start { name, empty: false, .. } => self.skipping.push(name),
                Token::End { name } => {
                    self.lexer.check_end(open, name)?;
                    self.skipping.pop();
                }
                Token::Start { empty: true, .. } | Token::Text(_) | Token::CData(_) | Token::Eof => {}
            }
        }
        Ok(())
    }

    /// The text of the leaf element `el`, references resolved, borrowed from the reply unless it had to be
    /// resolved or joined; empty when `el` has child elements (they are skipped).
    #[inline]
    pub fn text(&mut self, el: &Element<'a>) -> Result<Cow<'a, str>, XmlError> {
        if el.empty {
            return Ok(Cow::Borrowed(""));
        }
        match self.lexer.leaf_text(el.qname) {
            Some(text) => Ok(Cow::Borrowed(text)),
            None => self.text_in_pieces(el),
        }
    }

    /// [`XmlReader::text`] of an element whose content is more than plain text and its end tag.
    fn text_in_pieces(&mut self, el: &Element<'a>) -> Result<Cow<'a, str>, XmlError> {
        let mut text: Cow<'a, str> = Cow::Borrowed("");
        let mut has_children = false;
        loop {
            let at = self.lexer.position();
            let piece = match self.token()? {
                Token::Text(raw) => unescape(raw, at)?,
                Token::CData(raw) => Cow::Borrowed(raw),
                Token::End { name } => {
                    self.lexer.check_end(el.qname, name)?;
                    break;
                }
                Token::Start { name, local, empty } => {
                    has_children = true;
                    self.skip(&Element {
                        qname: name,
                        name: local,
                        empty,
                    })?;
                    continue;
                }
                Token::Eof => continue,
            };
            if text.is_empty() {
                text = piece;
            } else {
                text.to_mut().push_str(&piece);
            }
        }
        Ok(if has_children { Cow::Borrowed("") } else { text })
    }

    /// Reads the structure `el`: `f` gets each child element with its name in ASCII lower case (names longer
    /// than 64 bytes as empty, so no member matches them) and must read or skip it. Errors below get `el`'s name
    /// prepended to their path.
    pub fn read_struct(
        &mut self,
        el: &Element<'a>,
        mut f: impl FnMut(&mut Self, &[u8], &Element<'a>) -> Result<(), XmlError>,
    ) -> Result<(), XmlError> {
        self.read_members(el, &mut f)
    }

    /// [`XmlReader::read_struct`]'s loop, compiled once rather than for each structure: only the call to `f`
    /// differs between them.
    fn read_members(&mut self, el: &Element<'a>, f: &mut ReadMember<'_, 'a>) -> Result<(), XmlError> {
        let mut buf = [0u8; MAX_NAME];
        while let Some(child) = self.child(el)? {
            let lower = lower_name(child.name(), &mut buf);
            f(self, lower, &child).map_err(|e| e.within(el.name()))?;
        }
        Ok(())
    }

    /// Reads the scalar member `el` into `slot`. `seen` holds one bit per member of the structure being read
    /// (`bit` is this member's): a member read again must hold the same value, else [`XmlError::Repeated`].
    pub fn scalar<T: XmlScalar + PartialEq + Debug>(
        &mut self,
        el: &Element<'a>,
        seen: &mut u64,
        bit: u32,
        slot: &mut Option<T>,
    ) -> Result<(), XmlError> {
        let text = self.text(el)?;
        let value = convert::<T>(el, text.as_ref())?;
        let mask = 1u64 << bit;
        if *seen & mask == 0 {
            *seen |= mask;
            *slot = value;
        } else if *slot != value {
            return Err(XmlError::Repeated {
                path: el.name().to_owned(),
                first: slot.as_ref().map(|v| cut(&v.to_string())).unwrap_or_default(),
                again: cut(&text),
            });
        }
        Ok(())
    }

    /// Reads the structure member `el` into `slot` (in place the first time), with the same rule for repeats as
    /// [`XmlReader::scalar`].
    pub fn structure<T: FromXml + PartialEq + Debug>(
        &mut self,
        el: &Element<'a>,
        seen: &mut u64,
        bit: u32,
        slot: &mut Option<T>,
    ) -> Result<(), XmlError> {
        let mask = 1u64 << bit;
        if *seen & mask == 0 {
            *seen |= mask;
            return slot.insert(T::default()).read_xml(self, el);
        }
        let mut again = T::default();
        again.read_xml(self, el)?;
        if slot.as_ref() != Some(&again) {
            return Err(XmlError::Repeated {
                path: el.name().to_owned(),
                first: slot.as_ref().map(describe).unwrap_or_default(),
                again: describe(&again),
            });
        }
        Ok(())
    }

    /// Reads the list `el`: each `item` or `member` child is one entry, appended to `out` and read in place;
    /// other children are skipped.
    pub fn list<T: FromXml>(&mut self, el: &Element<'a>, out: &mut Vec<T>) -> Result<(), XmlError> {
        self.read_entries(el, &mut |r, entry| push_entry(out, T::default()).read_xml(r, entry))
    }

    /// Reads the list of scalars `el`: each `item` or `member` child is one entry (empty numbers, booleans and
    /// timestamps are left out); other children are skipped.
    pub fn scalar_list<T: XmlScalar>(&mut self, el: &Element<'a>, out: &mut Vec<T>) -> Result<(), XmlError> {
        self.read_entries(el, &mut |r, entry| {
            let text = r.text(entry)?;
            if let Some(v) = convert::<T>(entry, &text)? {
                push_entry(out, v);
            }
            Ok(())
        })
    }

    /// The loop of [`XmlReader::list`] and [`XmlReader::scalar_list`], compiled once: `f` reads each entry of
    /// the list `list`; a child that is not an entry is logged and skipped. Errors below get `list`'s name
    /// prepended to their path.
    fn read_entries(&mut self, list: &Element<'a>, f: &mut ReadEntry<'_, 'a>) -> Result<(), XmlError> {
        while let Some(child) = self.child(list)? {
            if is_entry_name(child.name()) {
                f(self, &child).map_err(|e| e.within(list.name()))?;
            } else {
                tracing::debug!(
                    list = list.name(),
                    element = child.name(),
                    "skipping an element that is not a list entry"
                );
                self.skip(&child)?;
            }
        }
        Ok(())
    }
}

/// Appends `entry` to `list` and returns it. The first allocation holds four entries as with `Vec::push`, but
/// fewer when entries are large (about 512 bytes' worth, at least one entry); the capacity then doubles. Most
/// lists in a reply hold one or two entries, and room for four of an instance's network interfaces (600 bytes
/// each) would be a large part of the output's memory.
fn push_entry<T>(list: &mut Vec<T>, entry: T) -> &mut T {
    if list.len() == list.capacity() {
        let first = (512 / size_of::<T>().max(1)).clamp(1, 4);
        list.reserve_exact(if list.is_empty() { first } else { list.len() });
    }
    list.push(entry);
    let last = list.len() - 1;
    &mut list[last]
}

fn convert<T: XmlScalar>(el: &Element<'_>, text: &str) -> Result<Option<T>, XmlError> {
    T::from_text(text).map_err(|()| XmlError::InvalidValue {
        path: el.name().to_owned(),
        kind: T::KIND,
        value: text.to_owned(),
    })
}

/// A structure in a few words for error messages: its debug form, cut at 100 characters.
fn describe<T: Debug>(value: &T) -> String {
    cut(&format!("{value:?}"))
}

fn cut(text: &str) -> String {
    text.chars().take(100).collect()
}

/// `name` in ASCII lower case, in `buf` (eight bytes at a time); empty when longer than `buf`.
fn lower_name<'b>(name: &str, buf: &'b mut [u8; MAX_NAME]) -> &'b [u8] {
    let name = name.as_bytes();
    if name.len() > MAX_NAME {
        return &[];
    }
    let mut words = name.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let lower = lower_word(u64::from_le_bytes(word.try_into().unwrap_or_default()));
        buf[at..at + 8].copy_from_slice(&lower.to_le_bytes());
        at += 8;
    }
    for (d, s) in buf[at..].iter_mut().zip(words.remainder()) {
        *d = s.to_ascii_lowercase();
    }
    &buf[..name.len()]
}

/// Each byte of `word` in ASCII lower case.
fn lower_word(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = word & !HIGH;
    // High bit set where the low seven bits are at least `A`, and where they are above `Z` (no carries: each
    // byte is below 0x80 before the addition).
    let at_least_a = low7 + ONES * u64::from(0x80 - b'A');
    let above_z = low7 + ONES * u64::from(0x7f - b'Z');
    // Upper-case ASCII letters only (a byte with its high bit set is not ASCII).
    let upper = at_least_a & !above_z & !word & HIGH;
    word | (upper >> 2)
}

#[cfg(test)]
mod tests {
    use super::super::from_str;
    use super::*;

    // Hand-written in the shape `cargo xtask codegen` emits.

    #[derive(Debug, Default, PartialEq)]
    struct Vol {
        id: Option<String>,
        size: Option<i64>,
        tags: Vec<String>,
    }

    impl FromXml for Vol {
        fn read_xml<'a>(&mut self, r: &mut XmlReader<'a>, el: &Element<'a>) -> Result<(), XmlError> {
            let mut seen = 0u64;
            r.read_struct(el, |r, name, child| match (name.len(), name) {
                (8, b"volumeid") => r.scalar(child, &mut seen, 0, &mut self.id),
                (4, b"size") => r.scalar(child, &mut seen, 1, &mut self.size),
                (6, b"tagset") => r.scalar_list(child, &mut self.tags),
                _ => r.skip(child),
            })
        }
    }

    #[derive(Debug, Default, PartialEq)]
    struct Vols {
        request_id: Option<String>,
        set: Vec<Vol>,
    }

    impl FromXml for Vols {
        fn read_xml<'a>(&mut self, r: &mut XmlReader<'a>, el: &Element<'a>) -> Result<(), XmlError> {
            let mut seen = 0u64;
            r.read_struct(el, |r, name, child| match (name.len(), name) {
                (9, b"requestid") => r.scalar(child, &mut seen, 0, &mut self.request_id),
                (3, b"set") => r.list(child, &mut self.set),
                _ => r.skip(child),
            })
        }

        fn request_id(&self) -> Option<&str> {
            super::super::trimmed_id(self.request_id.as_deref())
        }
    }

    #[derive(Debug, Default, PartialEq)]
    struct Attachment {
        instance: Option<String>,
        status: Option<String>,
    }

    impl FromXml for Attachment {
        fn read_xml<'a>(&mut self, r: &mut XmlReader<'a>, el: &Element<'a>) -> Result<(), XmlError> {
            let mut seen = 0u64;
            r.read_struct(el, |r, name, child| match (name.len(), name) {
                (10, b"instanceid") => r.scalar(child, &mut seen, 0, &mut self.instance),
                (6, b"status") => r.scalar(child, &mut seen, 1, &mut self.status),
                _ => r.skip(child),
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
        fn read_xml<'a>(&mut self, r: &mut XmlReader<'a>, el: &Element<'a>) -> Result<(), XmlError> {
            let mut seen = 0u64;
            r.read_struct(el, |r, name, child| match (name.len(), name) {
                (4, b"size") => r.scalar(child, &mut seen, 0, &mut self.size),
                (5, b"state") => r.structure(child, &mut seen, 1, &mut self.state),
                (13, b"attachmentset") => r.list(child, &mut self.attachments),
                (5, b"zones") => r.scalar_list(child, &mut self.zones),
                _ => r.skip(child),
            })
        }
    }

    fn disk(body: &str) -> Result<Disk, XmlError> {
        from_str(body)
    }

    #[test]
    fn reads_members_case_insensitively_and_skips_unknown_elements() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment --><n:R xmlns:n="https://computing.api.nifcloud.com/api/">
  <requestId> 5ec8 </requestId>
  <set>
    <item><VOLUMEID>v</VOLUMEID><size>2</size><tagSet><item>a</item><member>b</member></tagSet><unknown><x>1</x></unknown></item>
    <ITEM><n:volumeId>w</n:volumeId><size/><extra/></ITEM>
  </set>
</n:R>trailing text is not read"#;
        let vols: Vols = from_str(body).unwrap();
        assert_eq!(vols.request_id(), Some("5ec8"));
        assert_eq!(
            vols.set,
            vec![
                Vol {
                    id: Some("v".into()),
                    size: Some(2),
                    tags: vec!["a".into(), "b".into()]
                },
                Vol {
                    id: Some("w".into()),
                    size: None,
                    tags: vec![]
                },
            ]
        );
        let err = from_str::<Vols>("<r><set><item><size>x</size></item></set></r>").unwrap_err();
        assert_eq!(err.to_string(), "element r/set/item/size: \"x\" is not a valid integer");
        let long = format!("<r><{0}>1</{0}><set/></r>", "size".repeat(20));
        assert_eq!(from_str::<Vols>(&long).unwrap(), Vols::default());
    }

    #[test]
    fn names_lower_case_a_word_at_a_time() {
        let all: Vec<u8> = (0..=255u8).collect();
        for chunk in all.chunks(8) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap());
            let expected: Vec<u8> = chunk.iter().map(u8::to_ascii_lowercase).collect();
            assert_eq!(lower_word(word).to_le_bytes().to_vec(), expected);
        }
        let mut buf = [0u8; MAX_NAME];
        for name in [
            "",
            "a",
            "VolumeID",
            "niftyPrivateNetworkType",
            "ÄrgerÜBER_x-1.Y",
            &"aB".repeat(32),
        ] {
            assert_eq!(
                lower_name(name, &mut buf),
                name.to_ascii_lowercase().as_bytes(),
                "{name}"
            );
        }
        assert_eq!(lower_name(&"a".repeat(65), &mut buf), b"");
    }

    #[test]
    fn text_keeps_whitespace_resolves_entities_and_joins_pieces() {
        let id = |body: &str| from_str::<Vol>(body).unwrap().id;
        assert_eq!(
            id("<v><volumeId> x &amp; y </volumeId></v>").as_deref(),
            Some(" x & y ")
        );
        assert_eq!(
            id("<v><volumeId>a&#x41;&#66;&lt;&unknown;</volumeId></v>").as_deref(),
            Some("aAB<&unknown;")
        );
        assert_eq!(
            id("<v><volumeId><![CDATA[<raw>]]>!</volumeId></v>").as_deref(),
            Some("<raw>!")
        );
        assert_eq!(id("<v><volumeId>a<!-- c -->b</volumeId></v>").as_deref(), Some("ab"));
        assert_eq!(id("<v><volumeId> </volumeId></v>").as_deref(), Some(" "));
        assert_eq!(id("<v><volumeId/></v>").as_deref(), Some(""));
        // An element with child elements has no text.
        assert_eq!(id("<v><volumeId>x<y>1</y></volumeId></v>").as_deref(), Some(""));
        assert_eq!(from_str::<Vol>("<v><size> 7\n</size></v>").unwrap().size, Some(7));
        assert_eq!(from_str::<Vol>("<v/>").unwrap(), Vol::default());
    }

    #[test]
    fn rejects_malformed_documents() {
        for bad in ["<v><size>1</v>", "<v><size>1</size>", "<v><volumeId>x", "</v>"] {
            assert!(
                matches!(from_str::<Vol>(bad), Err(XmlError::Syntax { .. })),
                "{bad}: {:?}",
                from_str::<Vol>(bad)
            );
        }
        assert_eq!(from_str::<Vol>("  "), Err(XmlError::NoRootElement));
        assert_eq!(from_str::<Vol>(""), Err(XmlError::NoRootElement));
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
        // Scalar lists too: `item`/`member` entries only.
        let d =
            disk("<d><zones><member>east-11</member><comment>x</comment><MEMBER>east-12</MEMBER></zones></d>").unwrap();
        assert_eq!(d.zones, vec!["east-11".to_owned(), "east-12".to_owned()]);
    }

    #[test]
    fn a_repeated_scalar_with_another_value_is_an_error_not_last_one_wins() {
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
        assert!(matches!(
            disk("<d><size/><size>100</size></d>"),
            Err(XmlError::Repeated { .. })
        ));
        // The same value twice is read once.
        assert_eq!(
            disk("<d><size>100</size><size> 100 </size></d>").unwrap().size,
            Some(100)
        );
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
                first: r#"Attachment { instance: None, status: Some("a") }"#.into(),
                again: r#"Attachment { instance: None, status: Some("b") }"#.into(),
            }
        );
        let same = "<d><state><status>a</status></state><State><status>a</status><x/></State></d>";
        assert_eq!(disk(same).unwrap().state.unwrap().status.as_deref(), Some("a"));
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
}
