use super::*;
use crate::types::{DescribeLoadBalancersResultWrapper, LoadBalancerDescriptions};
use crate::xml::from_str;

const LB_PATH: [&str; 2] = ["DescribeLoadBalancersResult", "LoadBalancerDescriptions"];

fn lb(name: &str, members: &[&str]) -> String {
    let members: String = members
        .iter()
        .map(|m| format!("<member><InstanceId>{m}</InstanceId></member>"))
        .collect();
    format!(
        "<member><LoadBalancerName>{name}</LoadBalancerName><Instances>{members}</Instances>\
         <HealthCheck><InstanceStates>{members}</InstanceStates></HealthCheck></member>"
    )
}

fn lb_reply(lists: &[String]) -> String {
    let lists: String = lists
        .iter()
        .map(|l| format!("<LoadBalancerDescriptions>{l}</LoadBalancerDescriptions>"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeLoadBalancersResponse xmlns=\"https://computing.api.nifcloud.com/api/\">\
         <DescribeLoadBalancersResult>{lists}</DescribeLoadBalancersResult>\
         <ResponseMetadata><RequestId> req-1 </RequestId></ResponseMetadata></DescribeLoadBalancersResponse>\n"
    )
}

/// Feeds `doc` in chunks of `size` bytes; returns the entries' texts and the request id.
fn split(path: &[&str], doc: &str, size: usize) -> Result<(Vec<String>, Option<String>), XmlError> {
    let mut s = ListSplitter::new(path);
    let mut out = Vec::new();
    for chunk in doc.as_bytes().chunks(size) {
        s.feed(chunk, |e| {
            out.push(e.to_owned());
            Ok(())
        })?;
    }
    let n = s.finish(|e| {
        out.push(e.to_owned());
        Ok(())
    })?;
    assert_eq!(n, out.len(), "finish counts every entry handed out");
    Ok((out, s.request_id().map(str::to_owned)))
}

/// The typed entries read one by one from `doc` fed in chunks of `size`.
fn typed(doc: &str, size: usize) -> Vec<LoadBalancerDescriptions> {
    let (entries, _) = split(&LB_PATH, doc, size).expect("splits");
    entries.iter().map(|e| from_str(e).expect("entry parses")).collect()
}

fn whole(doc: &str) -> Vec<LoadBalancerDescriptions> {
    from_str::<DescribeLoadBalancersResultWrapper>(doc)
        .expect("reply parses")
        .describe_load_balancers_result
        .expect("result")
        .load_balancer_descriptions
}

#[test]
fn entries_read_one_by_one_equal_the_whole_reply_read_at_once_at_every_chunk_size() {
    let doc = lb_reply(&[lb("a", &["n1", "n2"]) + &lb("b", &[]), lb("c", &["n3"])]);
    let expected = whole(&doc);
    assert_eq!(expected.len(), 3, "a repeated list element adds its entries");
    for size in 1..=doc.len() {
        assert_eq!(typed(&doc, size), expected, "chunks of {size} bytes");
    }
    let (_, id) = split(&LB_PATH, &doc, 5).expect("splits");
    assert_eq!(id.as_deref(), Some("req-1"), "the request id, trimmed");
}

#[test]
fn markup_that_only_looks_like_an_entry_is_not_cut_out() {
    let doc = "<R><!-- <member> --><?pi <member>?><x:Result><List a='1>2' b=\"/>\">\
               <n:member><Name><![CDATA[</member>]]></Name><Sub><member><Name>inner</Name></member></Sub></n:member>\
               <MEMBER/><other><Name>skipped</Name></other></List></x:Result>\
               <List><member><Name>not on the path</Name></member></List></R>";
    for size in [1, 2, 3, 7, doc.len()] {
        let (entries, id) = split(&["result", "LIST"], doc, size).expect("splits");
        assert_eq!(
            entries,
            [
                "<n:member><Name><![CDATA[</member>]]></Name><Sub><member><Name>inner</Name></member></Sub></n:member>",
                "<MEMBER/>"
            ],
            "chunks of {size} bytes"
        );
        assert_eq!(id, None);
    }
}

#[test]
fn a_self_closing_list_or_root_has_no_entries() {
    assert_eq!(split(&["List"], "<R><List/></R>", 2).expect("splits").0.len(), 0);
    assert_eq!(split(&["List"], "<R/>", 1).expect("splits").0.len(), 0);
}

#[test]
fn a_reply_cut_short_or_malformed_is_an_error() {
    let doc = lb_reply(&[lb("a", &["n1"])]);
    for (cut, why) in [
        (doc.len() / 2, "unterminated tag"),
        (doc.find("</member>").expect("an entry"), "end of document"),
    ] {
        let err = split(&LB_PATH, &doc[..cut], 16).expect_err("cut short");
        assert!(
            matches!(&err, XmlError::Syntax { message, .. } if message.contains(why)),
            "{err:?}"
        );
    }
    assert!(matches!(
        split(&LB_PATH, "<R><A></B></R>", 3),
        Err(XmlError::Syntax { message, position: 6 }) if message.contains("expected `</A>`")
    ));
    assert!(matches!(split(&LB_PATH, "  ", 1), Err(XmlError::NoRootElement)));
    assert!(matches!(
        split(&["L"], "<R></R><S/>", 1),
        Err(XmlError::Syntax { message, .. }) if message.contains("after the root")
    ));
    assert!(matches!(
        split(&["L"], "<R><L><member><!-- open", 4),
        Err(XmlError::Syntax { message, .. }) if message.contains("unterminated comment")
    ));
}

#[test]
fn an_error_inside_an_entry_names_the_whole_path_and_its_place_in_the_reply() {
    let doc = "<R><Result><List><member><NetworkVolume>ten</NetworkVolume></member></List></Result></R>";
    let mut s = ListSplitter::new(&["Result", "List"]);
    let err = s
        .feed(doc.as_bytes(), |e| from_str::<LoadBalancerDescriptions>(e).map(drop))
        .expect_err("invalid number");
    assert!(
        matches!(&err, XmlError::InvalidValue { path, .. } if path == "Result/List/member/NetworkVolume"),
        "{err:?}"
    );
    let doc = "<R><Result><List><member><a></b></member>";
    let mut s = ListSplitter::new(&["Result", "List"]);
    let err = s
        .feed(doc.as_bytes(), |e| from_str::<LoadBalancerDescriptions>(e).map(drop))
        .expect_err("malformed entry");
    let whole = crate::xml::parse(doc).expect_err("malformed reply");
    assert!(matches!(err, XmlError::Syntax { .. }), "{err:?}");
    assert_eq!(err, whole, "the same error at the same place as in the whole reply");
}

#[test]
fn the_buffer_holds_about_one_entry_and_one_chunk_not_the_reply() {
    let members: Vec<String> = (0..200).map(|i| format!("node{i:04}")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let one = lb("k8s-00000", &members);
    let doc = lb_reply(&[(0..200).map(|i| lb(&format!("k8s-{i:05}"), &members)).collect()]);
    assert!(doc.len() > 100 * one.len());
    let mut s = ListSplitter::new(&LB_PATH);
    let (mut seen, mut most) = (0, 0);
    for chunk in doc.as_bytes().chunks(16 * 1024) {
        s.feed(chunk, |_| {
            seen += 1;
            Ok(())
        })
        .expect("feeds");
        most = most.max(s.buf.capacity());
    }
    s.finish(|_| Ok(())).expect("complete");
    assert_eq!(seen, 200);
    assert!(
        most <= 4 * (one.len() + 16 * 1024),
        "held at most {most} bytes of a {} byte reply",
        doc.len()
    );

    // The whole reply in one chunk (a fast connection hands over large ones): still about one entry and a piece.
    let mut s = ListSplitter::new(&LB_PATH);
    let mut seen = 0;
    s.feed(doc.as_bytes(), |_| {
        seen += 1;
        Ok(())
    })
    .expect("feeds");
    s.finish(|_| Ok(())).expect("complete");
    assert_eq!(seen, 200);
    let most = s.buf.capacity();
    assert!(
        most <= 4 * (one.len() + FEED_PIECE),
        "held at most {most} bytes of a {} byte reply fed as one chunk",
        doc.len()
    );
}
