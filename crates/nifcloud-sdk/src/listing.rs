//! Reading a long list out of a reply entry by entry, while the reply arrives.
//!
//! A region-wide listing can be large (`DescribeLoadBalancers` of 500 load balancers with 200 members each is
//! about 14 MB of XML, and its typed output several times that). A caller that only keeps a few fields of each
//! entry can instead feed the reply's body to a [`ListSplitter`] chunk by chunk: it cuts out each entry of the
//! list at a given path as soon as its end tag has arrived and hands the entry's text to the caller, who reads it
//! with [`crate::xml::from_str`] into the generated entry type and keeps what it needs. What is held at any time
//! is one entry and one chunk, not the reply. [`crate::Client::send_folded`] does this for a typed operation.
//!
//! The splitter only finds element boundaries (start and end tags, comments, CDATA sections, processing
//! instructions and quoted attribute values that may hold `>`); each entry is then read by the same one-pass reader
//! as a whole reply, with the same rules ([`crate::xml`]): names compare ASCII-case-insensitively, namespace
//! prefixes are ignored, a list's entries are its `item` and `member` children, and a list element that appears
//! again adds its entries. Outside the entries it checks that end tags match their start tags and that the document
//! is complete, and it picks up the request ID (`requestId` or `ResponseMetadata/RequestId`).

use std::ops::Range;

use memchr::{memchr, memmem};

use crate::xml::{XmlError, is_entry_name};

/// How much of a chunk [`ListSplitter::feed`] takes into its buffer at a time.
const FEED_PIECE: usize = 16 * 1024;

/// Cuts the entries of the list at one path out of a reply fed to it in chunks (see the module documentation).
#[derive(Debug)]
pub struct ListSplitter {
    /// The list's path below the root element.
    path: Vec<String>,
    /// Bytes received and not yet consumed (`buf[..start]` is consumed and dropped from time to time).
    buf: Vec<u8>,
    start: usize,
    /// Where scanning resumes in `buf`.
    scan: usize,
    /// Bytes dropped from the front of `buf` so far, to report absolute positions.
    dropped: usize,
    /// The qualified names of the open elements outside any entry, the root first.
    open: Vec<String>,
    /// How many elements of `path` the open elements match, from the root down.
    matched: usize,
    /// The entry being received: where its start tag begins in `buf`, and how many of its elements are open.
    entry: Option<(usize, usize)>,
    /// Where the text of an open `requestId` element begins in `buf`.
    capture: Option<usize>,
    request_id: Option<String>,
    root_seen: bool,
    root_closed: bool,
    entries: usize,
}

/// One piece of markup, found whole in the buffer (names as ranges of it).
enum Markup {
    Start {
        name: Range<usize>,
        empty: bool,
    },
    End {
        name: Range<usize>,
    },
    /// A comment, CDATA section, processing instruction or declaration: nothing to track.
    Other,
}

impl ListSplitter {
    /// A splitter for the entries of the list at `path` below the root element: `["reservationSet"]` for
    /// `DescribeInstances`, `["DescribeLoadBalancersResult", "LoadBalancerDescriptions"]` for
    /// `DescribeLoadBalancers` (names compare ASCII-case-insensitively).
    pub fn new(path: &[&str]) -> Self {
        Self {
            path: path.iter().map(|p| (*p).to_owned()).collect(),
            buf: Vec::new(),
            start: 0,
            scan: 0,
            dropped: 0,
            open: Vec::new(),
            matched: 0,
            entry: None,
            capture: None,
            request_id: None,
            root_seen: false,
            root_closed: false,
            entries: 0,
        }
    }

    /// Takes the next chunk of the reply and hands every entry it completes to `each`, as the entry's whole
    /// element (`<member>...</member>`). An error from `each` stops the reading and is returned.
    pub fn feed(&mut self, chunk: &[u8], mut each: impl FnMut(&str) -> Result<(), XmlError>) -> Result<(), XmlError> {
        // In pieces: the buffer then holds one piece beside the entry being received, however large the chunks
        // (hyper hands over up to a few hundred KB at once from a fast connection).
        for piece in chunk.chunks(FEED_PIECE) {
            self.buf.extend_from_slice(piece);
            self.process(&mut each, false)?;
            self.compact();
        }
        Ok(())
    }

    /// Ends the reply: an error when it stopped before the root element's end tag (or held no element).
    /// Returns how many entries were handed out.
    pub fn finish(&mut self, mut each: impl FnMut(&str) -> Result<(), XmlError>) -> Result<usize, XmlError> {
        self.process(&mut each, true)?;
        if !self.root_seen {
            return Err(XmlError::NoRootElement);
        }
        if !self.root_closed {
            return Err(self.error(self.buf.len(), "unexpected end of document"));
        }
        Ok(self.entries)
    }

    /// The reply's request ID, once read (trimmed; `None` when absent or empty).
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    fn error(&self, at: usize, message: impl Into<String>) -> XmlError {
        XmlError::Syntax {
            position: (self.dropped + at) as u64,
            message: message.into(),
        }
    }

    /// Reads every piece of markup that is whole in the buffer.
    fn process(&mut self, each: &mut dyn FnMut(&str) -> Result<(), XmlError>, eof: bool) -> Result<(), XmlError> {
        loop {
            let Some(lt) = memchr(b'<', &self.buf[self.scan..]).map(|i| self.scan + i) else {
                self.scan = self.buf.len();
                if self.entry.is_none() && self.capture.is_none() {
                    self.start = self.scan;
                }
                return Ok(());
            };
            if let Some(from) = self.capture.take() {
                let text = String::from_utf8_lossy(&self.buf[from..lt]);
                let id = text.trim();
                self.request_id = (!id.is_empty()).then(|| id.to_owned());
            }
            let Some((end, markup)) = self.markup(lt, eof)? else {
                // The markup is cut by the chunk's end: wait for the next chunk.
                self.scan = lt;
                if self.entry.is_none() {
                    self.start = lt;
                }
                return Ok(());
            };
            match markup {
                Markup::Start { name, empty } => self.start_tag(lt, end, name, empty, each)?,
                Markup::End { name } => self.end_tag(lt, end, name, each)?,
                Markup::Other => {}
            }
            self.scan = end;
            if self.entry.is_none() && self.capture.is_none() {
                self.start = end;
            }
        }
    }

    fn start_tag(
        &mut self,
        at: usize,
        end: usize,
        name: Range<usize>,
        empty: bool,
        each: &mut dyn FnMut(&str) -> Result<(), XmlError>,
    ) -> Result<(), XmlError> {
        if let Some((_, depth)) = &mut self.entry {
            if !empty {
                *depth += 1;
            }
            return Ok(());
        }
        if self.root_closed {
            return Err(self.error(at, "an element after the root element's end"));
        }
        self.root_seen = true;
        let qname = self.name(at, name)?.to_owned();
        let local = local_name(&qname);
        let n = self.open.len();
        if n == self.path.len() + 1 && self.matched == self.path.len() && is_entry_name(local) {
            if empty {
                self.emit(at, end, each)?;
            } else {
                self.entry = Some((at, 1));
            }
            return Ok(());
        }
        if empty {
            self.root_closed = n == 0;
            return Ok(());
        }
        if n >= 1 && self.matched == n - 1 && n - 1 < self.path.len() && local.eq_ignore_ascii_case(&self.path[n - 1]) {
            self.matched = n;
        }
        if local.eq_ignore_ascii_case("requestid") {
            self.capture = Some(end);
        }
        self.open.push(qname);
        Ok(())
    }

    fn end_tag(
        &mut self,
        at: usize,
        end: usize,
        name: Range<usize>,
        each: &mut dyn FnMut(&str) -> Result<(), XmlError>,
    ) -> Result<(), XmlError> {
        if let Some((start, depth)) = &mut self.entry {
            *depth -= 1;
            if *depth == 0 {
                let start = *start;
                self.entry = None;
                self.emit(start, end, each)?;
            }
            return Ok(());
        }
        let qname = self.name(at, name)?;
        let Some(open) = self.open.last() else {
            return Err(self.error(at, format!("unexpected end tag `</{qname}>`")));
        };
        if open != qname {
            return Err(self.error(at, format!("expected `</{open}>`, but `</{qname}>` was found")));
        }
        self.open.pop();
        self.matched = self.matched.min(self.open.len().saturating_sub(1));
        self.root_closed = self.open.is_empty();
        Ok(())
    }

    /// The element name at `range` of the buffer.
    fn name(&self, at: usize, range: Range<usize>) -> Result<&str, XmlError> {
        std::str::from_utf8(&self.buf[range]).map_err(|_| self.error(at, "an element name that is not UTF-8"))
    }

    /// Hands the entry `buf[from..to]` to `each`; syntax errors in it get positions in the whole reply.
    fn emit(
        &mut self,
        from: usize,
        to: usize,
        each: &mut dyn FnMut(&str) -> Result<(), XmlError>,
    ) -> Result<(), XmlError> {
        self.entries += 1;
        let text = String::from_utf8_lossy(&self.buf[from..to]);
        each(&text).map_err(|e| match e {
            XmlError::Syntax { position, message } => XmlError::Syntax {
                position: position + (self.dropped + from) as u64,
                message,
            },
            other => other.within(&self.path.join("/")),
        })
    }

    /// The markup starting at `buf[lt] == b'<'` and the index just past it, or `None` when the buffer ends
    /// before it does (and more may come).
    fn markup(&self, lt: usize, eof: bool) -> Result<Option<(usize, Markup)>, XmlError> {
        let rest = &self.buf[lt..];
        let cut = |what: &str| {
            if eof {
                Err(self.error(lt, format!("unterminated {what}")))
            } else {
                Ok(None)
            }
        };
        let find = |from: usize, pat: &[u8]| memmem::find(&rest[from..], pat).map(|i| lt + from + i + pat.len());
        // Prefixes that decide the kind of markup may themselves be cut.
        for (prefix, close, what) in [
            (&b"<!--"[..], &b"-->"[..], "comment"),
            (b"<![CDATA[", b"]]>", "CDATA section"),
            (b"<?", b"?>", "processing instruction"),
        ] {
            if rest.starts_with(prefix) {
                return match find(prefix.len(), close) {
                    Some(end) => Ok(Some((end, Markup::Other))),
                    None => cut(what),
                };
            }
            if rest.len() < prefix.len() && prefix.starts_with(rest) {
                return cut(what);
            }
        }
        if rest.starts_with(b"<!") {
            return match find(2, b">") {
                Some(end) => Ok(Some((end, Markup::Other))),
                None => cut("declaration"),
            };
        }
        // A tag: its end is the first `>` outside quoted attribute values.
        let mut quote = None;
        let mut gt = None;
        for (i, &b) in rest.iter().enumerate().skip(1) {
            match (quote, b) {
                (None, b'"' | b'\'') => quote = Some(b),
                (Some(q), _) if b == q => quote = None,
                (None, b'>') => {
                    gt = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(gt) = gt else { return cut("tag") };
        let closing = rest.get(1) == Some(&b'/');
        let from = if closing { 2 } else { 1 };
        let empty = !closing && gt > 1 && rest[gt - 1] == b'/';
        let name_len = rest[from..gt]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/')
            .unwrap_or(gt - from);
        if name_len == 0 {
            return Err(self.error(lt, "a tag without a name"));
        }
        let name = lt + from..lt + from + name_len;
        let markup = if closing {
            Markup::End { name }
        } else {
            Markup::Start { name, empty }
        };
        Ok(Some((lt + gt + 1, markup)))
    }

    /// Drops consumed bytes once they are most of the buffer (so each byte is moved at most a few times).
    fn compact(&mut self) {
        if self.start == 0 || self.start < self.buf.len() / 2 {
            return;
        }
        let n = self.start;
        self.buf.drain(..n);
        self.dropped += n;
        self.start = 0;
        self.scan -= n;
        if let Some((s, _)) = &mut self.entry {
            *s -= n;
        }
        if let Some(c) = &mut self.capture {
            *c -= n;
        }
        if self.buf.capacity() > 4 * self.buf.len().max(64 * 1024) {
            self.buf.shrink_to(self.buf.len().max(64 * 1024));
        }
    }
}

/// `name` without its namespace prefix.
fn local_name(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, local)| local)
}

#[cfg(test)]
mod tests;
