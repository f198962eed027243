//! The XML tokenizer both readers share: start and end tags, character data and CDATA, borrowed from the
//! reply.
//!
//! It reads what the API sends (UTF-8 documents of elements, text, entity and character references, CDATA,
//! comments, processing instructions, a declaration and, in principle, a document type declaration) and finds
//! the end of each token eight bytes at a time (names and short texts, most of a reply) or with `memchr`, so the
//! reply is scanned at memory speed. It does not check names against XML's grammar, read attributes (the API
//! carries no data in them) or match end tags to start tags: the readers, which know which element is open, do
//! that ([`Lexer::check_end`]), and take the common shapes in one step ([`Lexer::eat_end_tag`],
//! [`Lexer::leaf_text`]).

use std::borrow::Cow;

use memchr::{memchr, memchr2, memchr3, memmem};

use super::XmlError;

/// One token of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token<'a> {
    /// A start tag `<name ...>`, or an empty-element tag `<name .../>` when `empty`. `name` is the qualified
    /// name as written (`n:item`), `local` the name without prefix (`item`).
    Start { name: &'a str, local: &'a str, empty: bool },
    /// An end tag `</name>`.
    End { name: &'a str },
    /// Character data as written: entity and character references not yet resolved ([`unescape`]).
    Text(&'a str),
    /// The contents of a CDATA section.
    CData(&'a str),
    /// The end of the document.
    Eof,
}

/// A cursor over one document.
pub(super) struct Lexer<'a> {
    body: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `body`.
    pub(super) fn new(body: &'a str) -> Self {
        Self { body, pos: 0 }
    }

    /// A syntax error at byte `position`.
    pub(super) fn error(position: usize, message: impl Into<String>) -> XmlError {
        XmlError::Syntax {
            position: position as u64,
            message: message.into(),
        }
    }

    /// The next token; comments, processing instructions, the declaration and a document type declaration are
    /// skipped.
    #[inline(always)]
    pub(super) fn next(&mut self) -> Result<Token<'a>, XmlError> {
        loop {
            let bytes = self.body.as_bytes();
            let start = self.pos;
            let Some(&first) = bytes.get(start) else {
                return Ok(Token::Eof);
            };
            if first != b'<' {
                let end = find_either(&bytes[start..], b'<', b'<').map_or(bytes.len(), |i| start + i);
                self.pos = end;
                return Ok(Token::Text(&self.body[start..end]));
            }
            match bytes.get(start + 1) {
                Some(b'/') => return self.end_tag(start),
                Some(b'?' | b'!') | None => {
                    if let Some(token) = self.markup(start)? {
                        return Ok(token);
                    }
                }
                Some(_) => return self.start_tag(start),
            }
        }
    }

    /// Consumes the end tag `</qname>` when the document continues with exactly that (the common case, checked
    /// without scanning); `false` (nothing consumed) otherwise.
    #[inline]
    pub(super) fn eat_end_tag(&mut self, qname: &str) -> bool {
        let found = starts_with_end_tag(&self.body.as_bytes()[self.pos..], qname.as_bytes());
        if found {
            self.pos += qname.len() + 3;
        }
        found
    }

    /// Reads the markup at `start` that begins with `<?` or `<!` (or a `<` ending the document): a CDATA section
    /// is returned, a comment, processing instruction or document type declaration is skipped (`None`).
    #[cold]
    fn markup(&mut self, start: usize) -> Result<Option<Token<'a>>, XmlError> {
        let rest = &self.body.as_bytes()[start..];
        if rest.starts_with(b"<?") {
            self.pos = self.find(start + 2, b"?>", start, "processing instruction")? + 2;
        } else if rest.starts_with(b"<!--") {
            self.pos = self.find(start + 4, b"-->", start, "comment")? + 3;
        } else if rest.starts_with(b"<![CDATA[") {
            let end = self.find(start + 9, b"]]>", start, "CDATA section")?;
            self.pos = end + 3;
            return Ok(Some(Token::CData(&self.body[start + 9..end])));
        } else if rest.starts_with(b"<!DOCTYPE") {
            self.skip_doctype(start)?;
        } else if rest.starts_with(b"<!") {
            return Err(Self::error(start, "unknown markup after `<!`"));
        } else {
            return Err(Self::error(start, "unexpected end of document in a tag"));
        }
        Ok(None)
    }

    /// Errors unless the end tag `found` closes the element `open` (both qualified names as written).
    pub(super) fn check_end(&self, open: &str, found: &str) -> Result<(), XmlError> {
        if open == found {
            Ok(())
        } else {
            Err(Self::error(
                self.pos,
                format!("expected `</{open}>`, but `</{found}>` was found"),
            ))
        }
    }

    /// The common leaf, read in one step: when the document continues with text free of markup and references
    /// and then the end tag `</qname>`, both are consumed and the text is returned. `None` (nothing consumed)
    /// otherwise; the caller then reads the content token by token.
    pub(super) fn leaf_text(&mut self, qname: &str) -> Option<&'a str> {
        let bytes = self.body.as_bytes();
        let start = self.pos;
        let lt = start + find_either(&bytes[start..], b'<', b'&')?;
        if !starts_with_end_tag(&bytes[lt..], qname.as_bytes()) {
            return None;
        }
        self.pos = lt + 3 + qname.len();
        Some(&self.body[start..lt])
    }

    /// The byte offset of the next token.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// The offset of `needle` at or after `from`, or an error naming `what` opened at `opened`.
    fn find(&self, from: usize, needle: &[u8], opened: usize, what: &str) -> Result<usize, XmlError> {
        memmem::find(&self.body.as_bytes()[from..], needle)
            .map(|i| from + i)
            .ok_or_else(|| Self::error(opened, format!("unclosed {what}")))
    }

    fn end_tag(&mut self, start: usize) -> Result<Token<'a>, XmlError> {
        let bytes = self.body.as_bytes();
        let close = memchr(b'>', &bytes[start + 2..])
            .map(|i| start + 2 + i)
            .ok_or_else(|| Self::error(start, "unclosed end tag"))?;
        let name = self.body[start + 2..close].trim_end();
        if name.is_empty() || name.bytes().any(is_space) {
            return Err(Self::error(start, "malformed end tag"));
        }
        self.pos = close + 1;
        Ok(Token::End { name })
    }

    #[inline(always)]
    fn start_tag(&mut self, start: usize) -> Result<Token<'a>, XmlError> {
        let bytes = self.body.as_bytes();
        let name_start = start + 1;
        // The name ends at a space, `/` or `>`; its local part starts after its last `:`. All of these bytes are
        // below `A`, so runs of letters (most of a name) are skipped eight bytes at a time.
        let mut name_end = name_start;
        let mut local_start = name_start;
        loop {
            if let Some(word) = bytes.get(name_end..name_end + 8) {
                let below_a = bytes_below_a(u64::from_le_bytes(word.try_into().unwrap_or_default()));
                if below_a == 0 {
                    name_end += 8;
                    continue;
                }
                name_end += below_a.trailing_zeros() as usize / 8;
            }
            let Some(&b) = bytes.get(name_end) else {
                break;
            };
            match NAME_BYTE[b as usize] {
                NAME => {}
                COLON => local_start = name_end + 1,
                _ => break,
            }
            name_end += 1;
        }
        if name_end == name_start {
            return Err(Self::error(start, "a tag without an element name"));
        }
        let name = &self.body[name_start..name_end];
        let local = &self.body[local_start..name_end];
        // The common tags, `<name>` and `<name/>`, carry no attributes.
        let empty = match (bytes.get(name_end), bytes.get(name_end + 1)) {
            (Some(b'>'), _) => false,
            (Some(b'/'), Some(b'>')) => true,
            _ => return self.start_tag_with_attributes(start, name, local, name_end),
        };
        self.pos = name_end + 1 + usize::from(empty);
        Ok(Token::Start { name, local, empty })
    }

    /// The rest of a start tag that carries attributes (or is cut short).
    #[cold]
    fn start_tag_with_attributes(
        &mut self,
        start: usize,
        name: &'a str,
        local: &'a str,
        name_end: usize,
    ) -> Result<Token<'a>, XmlError> {
        let bytes = self.body.as_bytes();
        // The tag ends at the first `>` outside a quoted attribute value.
        let mut i = name_end;
        let close = loop {
            let Some(at) = memchr3(b'>', b'"', b'\'', &bytes[i..]).map(|k| i + k) else {
                return Err(Self::error(start, "unclosed start tag"));
            };
            if bytes[at] == b'>' {
                break at;
            }
            let quote = bytes[at];
            i = memchr(quote, &bytes[at + 1..])
                .map(|k| at + 1 + k + 1)
                .ok_or_else(|| Self::error(start, "unclosed attribute value"))?;
        };
        self.pos = close + 1;
        Ok(Token::Start {
            name,
            local,
            empty: close > name_end && bytes[close - 1] == b'/',
        })
    }

    /// Skips `<!DOCTYPE ...>`, with an internal subset in brackets if there is one.
    fn skip_doctype(&mut self, start: usize) -> Result<(), XmlError> {
        let bytes = self.body.as_bytes();
        let close = memchr(b'>', &bytes[start..]).map(|i| start + i);
        let open_subset = memchr(b'[', &bytes[start..]).map(|i| start + i);
        self.pos = match (close, open_subset) {
            (Some(c), Some(o)) if o < c => self.find(o, b"]", start, "document type declaration")?,
            (Some(c), _) => c,
            (None, _) => return Err(Self::error(start, "unclosed document type declaration")),
        };
        self.pos = memchr(b'>', &bytes[self.pos..])
            .map(|i| self.pos + i + 1)
            .ok_or_else(|| Self::error(start, "unclosed document type declaration"))?;
        Ok(())
    }
}

/// Whether `rest` starts with the end tag `</qname>`.
#[inline(always)]
fn starts_with_end_tag(rest: &[u8], qname: &[u8]) -> bool {
    let n = qname.len();
    match rest.get(..n + 3) {
        Some(tag) => tag[0] == b'<' && tag[1] == b'/' && tag[n + 2] == b'>' && same_bytes(&tag[2..n + 2], qname),
        None => false,
    }
}

/// `a == b` for slices of the same length, in two overlapping loads of each when they are 4 to 16 bytes long
/// (most names): short comparisons that a call to `memcmp` would cost more than.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    debug_assert_eq!(n, b.len());
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or_default());
    match n {
        0..4 => a == b,
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// The offset of the first `a` or `b` in `hay`. Texts are short (a leaf's value, the layout between elements),
/// so the first 32 bytes are looked at a word at a time (a call to `memchr2` costs more than that); `memchr2`
/// takes the rest.
#[inline(always)]
fn find_either(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `w` that is zero (the lowest one set is exact; those above it may not be).
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let mut at = 0;
    for chunk in hay.chunks_exact(8).take(4) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = zero_bytes(w ^ (ONES * u64::from(a))) | zero_bytes(w ^ (ONES * u64::from(b)));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr2(a, b, &hay[at..]).map(|i| at + i)
}

/// The high bit of each byte of `word` whose low seven bits are below `A` (so every ASCII byte below `A`; a
/// byte at or above 0x80 may be marked too, and is then looked at on its own).
#[inline(always)]
fn bytes_below_a(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // With each byte's high bit set first, subtracting `A` borrows from no neighbour and clears that bit exactly
    // where the low seven bits are below `A`.
    !(word | HIGH).wrapping_sub(ONES * u64::from(b'A')) & HIGH
}

/// [`NAME_BYTE`]: a byte of a name.
const NAME: u8 = 0;
/// [`NAME_BYTE`]: the `:` between a name's prefix and its local part.
const COLON: u8 = 1;
/// [`NAME_BYTE`]: a byte that ends a name (a space, `/` or `>`).
const NAME_END: u8 = 2;

/// What each byte is in a tag's name, looked up rather than compared several times per byte.
const NAME_BYTE: [u8; 256] = {
    let mut table = [NAME; 256];
    table[b' ' as usize] = NAME_END;
    table[b'\t' as usize] = NAME_END;
    table[b'\r' as usize] = NAME_END;
    table[b'\n' as usize] = NAME_END;
    table[b'/' as usize] = NAME_END;
    table[b'>' as usize] = NAME_END;
    table[b':' as usize] = COLON;
    table
};

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Resolves the references in character data: the five predefined entities and character references; an
/// unknown entity is kept as written. Borrowed when `raw` holds no `&`. `position` (of `raw`) is for errors.
pub(super) fn unescape(raw: &str, position: usize) -> Result<Cow<'_, str>, XmlError> {
    let Some(first) = memchr(b'&', raw.as_bytes()) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    let mut amp = first;
    loop {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = memchr(b';', after.as_bytes()).ok_or_else(|| Lexer::error(position, "a `&` without its `;`"))?;
        let name = &after[..semi];
        match name {
            "amp" => out.push('&'),
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            _ if name.starts_with('#') => out.push(
                char_ref(&name[1..])
                    .ok_or_else(|| Lexer::error(position, format!("`&{name};` is not a character reference")))?,
            ),
            // Unknown entity: kept as written rather than failing the whole reply.
            _ => {
                out.push('&');
                out.push_str(name);
                out.push(';');
            }
        }
        rest = &after[semi + 1..];
        match memchr(b'&', rest.as_bytes()) {
            Some(next) => amp = next,
            None => {
                out.push_str(rest);
                return Ok(Cow::Owned(out));
            }
        }
    }
}

/// The character of a reference's number: `x41` or `65`.
fn char_ref(number: &str) -> Option<char> {
    let code = match number.strip_prefix('x') {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => number.parse().ok()?,
    };
    char::from_u32(code).filter(|&c| c != '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(body: &str) -> Result<Vec<Token<'_>>, XmlError> {
        let mut lexer = Lexer::new(body);
        let mut out = Vec::new();
        loop {
            match lexer.next()? {
                Token::Eof => return Ok(out),
                t => out.push(t),
            }
        }
    }

    #[test]
    fn tags_text_and_cdata_with_the_rest_skipped() {
        let body = "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY x \"y\">]><!-- c --><n:r a=\"x>/\" b='\"'>\
                    t &amp; u<e/><f x=\"1\" /><![CDATA[<raw>]]></n:r >";
        assert_eq!(
            tokens(body).unwrap(),
            vec![
                Token::Text("\n"),
                Token::Start {
                    name: "n:r",
                    local: "r",
                    empty: false
                },
                Token::Text("t &amp; u"),
                Token::Start {
                    name: "e",
                    local: "e",
                    empty: true
                },
                Token::Start {
                    name: "f",
                    local: "f",
                    empty: true
                },
                Token::CData("<raw>"),
                Token::End { name: "n:r" },
            ]
        );
    }

    #[test]
    fn malformed_markup_is_a_syntax_error_at_its_start() {
        for (body, at) in [
            ("<a", 0),
            ("<a><", 3),
            ("<a x=\"1>", 0),
            ("</a", 0),
            ("</ >", 0),
            ("</a b>", 0),
            ("< a>", 0),
            ("<a><!-- x", 3),
            ("<a><![CDATA[x", 3),
            ("<a><!x>", 3),
        ] {
            match tokens(body) {
                Err(XmlError::Syntax { position, .. }) => assert_eq!(position, at, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn names_and_texts_of_every_length_and_byte() {
        // Names and texts around the word-at-a-time steps (8, 16, 32 bytes), with every name byte.
        for len in 1..40 {
            for b in (0..=255u8).filter(|&b| NAME_BYTE[b as usize] == NAME && b.is_ascii() && !b"<&".contains(&b)) {
                let name: String = (0..len).map(|i| if i == len / 2 { b as char } else { 'x' }).collect();
                let body = format!("<p:{name}>{name}</p:{name}>");
                let mut lexer = Lexer::new(&body);
                assert_eq!(
                    lexer.next().unwrap(),
                    Token::Start {
                        name: &body[1..name.len() + 3],
                        local: &name,
                        empty: false
                    }
                );
                assert_eq!(lexer.leaf_text(&format!("p:{name}")), Some(name.as_str()), "{name}");
                assert_eq!(lexer.next().unwrap(), Token::Eof);
            }
        }
        let mut lexer = Lexer::new("<ä:Ärger x='1'>x &amp; y</ä:Ärger>");
        assert!(matches!(lexer.next().unwrap(), Token::Start { local: "Ärger", .. }));
        assert_eq!(lexer.leaf_text("ä:Ärger"), None);
        for (text, at) in [("", None), ("abc", None), ("a<", Some(1)), (&"x".repeat(40), None)] {
            assert_eq!(find_either(text.as_bytes(), b'<', b'&'), at, "{text}");
        }
        for len in 0..48 {
            for (i, c) in [(len, '<'), (len, '&')] {
                let text = format!("{}{c}{}", "y".repeat(i), "<".repeat(3));
                assert_eq!(find_either(text.as_bytes(), b'<', b'&'), Some(i), "{text}");
            }
        }
    }

    #[test]
    fn references_resolve_and_unknown_entities_stay() {
        assert!(matches!(unescape("plain", 0), Ok(Cow::Borrowed("plain"))));
        assert_eq!(
            unescape("a&amp;b&lt;&gt;&quot;&apos;&#x41;&#66;&nbsp;.", 0).unwrap(),
            "a&b<>\"'AB&nbsp;."
        );
        for bad in ["a & b", "&#xZZ;", "&#0;", "&#xD800;"] {
            assert!(
                matches!(unescape(bad, 7), Err(XmlError::Syntax { position: 7, .. })),
                "{bad}"
            );
        }
    }
}
