//! The XML tokenizer both readers share: start and end tags, character data and CDATA, borrowed from the
//! reply.
//!
//! It reads what the API sends (UTF-8 documents of elements, text, entity and character references, CDATA,
//! comments, processing instructions, a declaration and, in principle, a document type declaration) and finds
//! the end of each token with `memchr`, so the reply is scanned at memory speed. It does not check names
//! against XML's grammar, read attributes (the API carries no data in them) or match end tags to start tags:
//! the readers, which know which element is open, do that ([`Lexer::check_end`]).

use std::borrow::Cow;

use memchr::{memchr, memchr3, memmem};

use super::XmlError;

/// One token of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token<'a> {
    /// A start tag `<name ...>`, or an empty-element tag `<name .../>` when `empty`. `name` is the qualified
    /// name as written (`n:item`).
    Start { name: &'a str, empty: bool },
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
    pub(super) fn next(&mut self) -> Result<Token<'a>, XmlError> {
        loop {
            let bytes = self.body.as_bytes();
            let start = self.pos;
            let Some(&first) = bytes.get(start) else {
                return Ok(Token::Eof);
            };
            if first != b'<' {
                let end = memchr(b'<', &bytes[start..]).map_or(bytes.len(), |i| start + i);
                self.pos = end;
                return Ok(Token::Text(&self.body[start..end]));
            }
            match bytes.get(start + 1) {
                Some(b'/') => return self.end_tag(start),
                Some(b'?') => self.pos = self.find(start + 2, b"?>", start, "processing instruction")? + 2,
                Some(b'!') => {
                    let rest = &bytes[start..];
                    if rest.starts_with(b"<!--") {
                        self.pos = self.find(start + 4, b"-->", start, "comment")? + 3;
                    } else if rest.starts_with(b"<![CDATA[") {
                        let end = self.find(start + 9, b"]]>", start, "CDATA section")?;
                        self.pos = end + 3;
                        return Ok(Token::CData(&self.body[start + 9..end]));
                    } else if rest.starts_with(b"<!DOCTYPE") {
                        self.skip_doctype(start)?;
                    } else {
                        return Err(Self::error(start, "unknown markup after `<!`"));
                    }
                }
                Some(_) => return self.start_tag(start),
                None => return Err(Self::error(start, "unexpected end of document in a tag")),
            }
        }
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

    fn start_tag(&mut self, start: usize) -> Result<Token<'a>, XmlError> {
        let bytes = self.body.as_bytes();
        let name_start = start + 1;
        let name_end = bytes[name_start..]
            .iter()
            .position(|&b| is_space(b) || b == b'/' || b == b'>')
            .map_or(bytes.len(), |i| name_start + i);
        if name_end == name_start {
            return Err(Self::error(start, "a tag without an element name"));
        }
        let name = &self.body[name_start..name_end];
        // The common tags, `<name>` and `<name/>`, carry no attributes.
        match (bytes.get(name_end), bytes.get(name_end + 1)) {
            (Some(b'>'), _) => {
                self.pos = name_end + 1;
                return Ok(Token::Start { name, empty: false });
            }
            (Some(b'/'), Some(b'>')) => {
                self.pos = name_end + 2;
                return Ok(Token::Start { name, empty: true });
            }
            _ => {}
        }
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
                    empty: false
                },
                Token::Text("t &amp; u"),
                Token::Start { name: "e", empty: true },
                Token::Start { name: "f", empty: true },
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
