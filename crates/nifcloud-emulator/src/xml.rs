//! A tiny XML writer for replies, with the two envelope styles the API uses.
//!
//! As the real service: a success reply starts with `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`
//! and has no whitespace between elements; an error document (`<Response>…`) has no XML declaration.

use std::fmt::Write as _;

/// The computing API's XML namespace.
pub const NAMESPACE: &str = "https://computing.api.nifcloud.com/api/";

/// The XML declaration every success reply starts with.
pub const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;

/// Reply envelope style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// EC2 style: lowerCamel elements, `item` list entries, `<requestId>`.
    Ec2,
    /// ELB style: `<OpResult>` wrapper, `member` list entries, `<ResponseMetadata><RequestId>`.
    Elb,
    /// ELB style for operations whose reply is only `<ResponseMetadata><RequestId>` (no `<OpResult>`).
    ElbMetadataOnly,
}

/// Appends escaped text.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
}

/// A `fmt::Write` that escapes everything written through it.
struct Escaper<'a>(&'a mut String);

impl std::fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if s.bytes()
            .all(|b| !matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'') && b >= 0x20)
        {
            self.0.push_str(s);
        } else {
            escape_into(self.0, s);
        }
        Ok(())
    }
}

/// An XML body under construction.
#[derive(Debug, Default)]
pub struct Xml {
    buf: String,
}

impl Xml {
    /// An empty body.
    pub fn new() -> Self {
        Self {
            buf: String::with_capacity(1024),
        }
    }

    fn open(&mut self, tag: &str) {
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push('>');
    }

    fn close(&mut self, tag: &str) {
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push('>');
    }

    /// `<tag>` + children written by `f` + `</tag>`.
    pub fn el(&mut self, tag: &str, f: impl FnOnce(&mut Self)) -> &mut Self {
        self.open(tag);
        f(self);
        self.close(tag);
        self
    }

    /// `<tag>text</tag>` (escaped); an empty value gives `<tag></tag>`.
    pub fn leaf(&mut self, tag: &str, text: impl std::fmt::Display) -> &mut Self {
        self.open(tag);
        let _ = write!(Escaper(&mut self.buf), "{text}");
        self.close(tag);
        self
    }

    /// `<tag><![CDATA[text]]></tag>`, as the service writes free text such as an elastic load balancer's
    /// descriptions (a `]]>` inside the text is split across two sections).
    pub fn cdata(&mut self, tag: &str, text: &str) -> &mut Self {
        self.open(tag);
        self.buf.push_str("<![CDATA[");
        self.buf.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
        self.buf.push_str("]]>");
        self.close(tag);
        self
    }

    /// `<tag>` wrapping one `<item_tag>` per element, each written by `f`.
    pub fn list<T>(
        &mut self,
        tag: &str,
        item_tag: &str,
        items: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        self.open(tag);
        for it in items {
            self.open(item_tag);
            f(self, it);
            self.close(item_tag);
        }
        self.close(tag);
        self
    }

    /// Escaped text inside the current element.
    pub fn text(&mut self, text: &str) -> &mut Self {
        escape_into(&mut self.buf, text);
        self
    }

    /// The body written so far.
    pub fn as_str(&self) -> &str {
        &self.buf
    }

    /// Wraps the body in the success envelope of `action`.
    pub fn into_response(self, action: &str, style: Style, request_id: &str) -> String {
        let mut out = String::with_capacity(self.buf.len() + 256);
        let _ = write!(out, "{DECLARATION}<{action}Response xmlns=\"{NAMESPACE}\">");
        match style {
            Style::Ec2 => {
                let _ = write!(out, "<requestId>{request_id}</requestId>");
                out.push_str(&self.buf);
            }
            Style::Elb => {
                let _ = write!(out, "<{action}Result>");
                out.push_str(&self.buf);
                let _ = write!(
                    out,
                    "</{action}Result><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
                );
            }
            Style::ElbMetadataOnly => {
                out.push_str(&self.buf);
                let _ = write!(
                    out,
                    "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
                );
            }
        }
        let _ = write!(out, "</{action}Response>");
        out
    }
}

/// The error document: `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`
/// (no XML declaration, no namespace).
pub fn error_document(code: &str, message: &str, request_id: &str) -> String {
    let mut out = String::from("<Response><Errors><Error><Code>");
    escape_into(&mut out, code);
    out.push_str("</Code><Message>");
    escape_into(&mut out, message);
    out.push_str("</Message></Error></Errors><RequestID>");
    escape_into(&mut out, request_id);
    out.push_str("</RequestID></Response>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_escaping() {
        let mut x = Xml::new();
        x.list("volumeSet", "item", ["a<b"], |x, v| {
            x.leaf("volumeId", v);
        });
        let ec2 = x.into_response("DescribeVolumes", Style::Ec2, "r1");
        assert!(ec2.contains("<DescribeVolumesResponse xmlns=\"https://computing.api.nifcloud.com/api/\"><requestId>r1</requestId><volumeSet><item><volumeId>a&lt;b</volumeId></item></volumeSet></DescribeVolumesResponse>"));
        let mut y = Xml::new();
        y.leaf("DNSName", "10.0.0.1");
        let elb = y.into_response("CreateLoadBalancer", Style::Elb, "r2");
        assert!(elb.contains("<CreateLoadBalancerResult><DNSName>10.0.0.1</DNSName></CreateLoadBalancerResult><ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata>"));
        assert!(ec2.starts_with(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><DescribeVolumesResponse "#));
        assert_eq!(
            error_document("Client.X", "a&b", "r3"),
            "<Response><Errors><Error><Code>Client.X</Code><Message>a&amp;b</Message></Error></Errors><RequestID>r3</RequestID></Response>"
        );
        let mut z = Xml::new();
        z.cdata("Description", "a]]>b<");
        assert_eq!(z.as_str(), "<Description><![CDATA[a]]]]><![CDATA[>b<]]></Description>");
    }
}
