//! `multipart/related` bodies (RFC 2387), as STOW-RS sends and WADO-RS
//! returns them.

/// One part: its Content-Type (lower case, parameters kept) and body.
#[derive(Debug, PartialEq)]
pub struct Part<'a> {
    pub content_type: Option<String>,
    pub body: &'a [u8],
}

/// The parameters of a media type: `multipart/related; type="..."; boundary=x`.
pub fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut it = value.split(';');
    let essence = it.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = it
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect();
    (essence, params)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// The parts of `body` delimited by `boundary`; an error says what is
/// malformed.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut at = find(body, d, 0).ok_or("no boundary delimiter in the body")?;
    let mut parts = Vec::new();
    loop {
        at += d.len();
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then CRLF.
        let line_end = find(body, b"\r\n", at).ok_or("a delimiter line without CRLF")?;
        let headers_end = find(body, b"\r\n\r\n", line_end)
            .ok_or("a part without a blank line after its headers")?;
        let headers = std::str::from_utf8(&body[line_end + 2..headers_end])
            .map_err(|_| "part headers are not text")?;
        let content_type = headers.split("\r\n").find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        });
        let start = headers_end + 4;
        let mut next_delim = Vec::with_capacity(d.len() + 2);
        next_delim.extend_from_slice(b"\r\n");
        next_delim.extend_from_slice(d);
        let end = find(body, &next_delim, start).ok_or("a part without a closing delimiter")?;
        parts.push(Part {
            content_type,
            body: &body[start..end],
        });
        at = end + 2;
    }
}

/// A boundary that does not occur in any of `bodies`.
pub fn boundary_for<'a>(bodies: impl Iterator<Item = &'a [u8]> + Clone) -> String {
    let mut n = 0u64;
    loop {
        let b = format!(
            "triaged-{:016x}",
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5bd1e995
        );
        if bodies
            .clone()
            .all(|body| find(body, b.as_bytes(), 0).is_none())
        {
            return b;
        }
        n += 1;
    }
}

/// The bytes of one part: its delimiter, headers and body.
pub fn part_head(boundary: &str, content_type: &str, first: bool) -> Vec<u8> {
    let lead = if first { "" } else { "\r\n" };
    format!("{lead}--{boundary}\r\nContent-Type: {content_type}\r\n\r\n").into_bytes()
}

/// The closing delimiter.
pub fn close(boundary: &str) -> Vec<u8> {
    format!("\r\n--{boundary}--\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let a = b"first\r\n--not the boundary".as_slice();
        let b = b"".as_slice();
        let boundary = boundary_for([a, b].into_iter());
        let mut body = part_head(&boundary, "application/dicom", true);
        body.extend_from_slice(a);
        body.extend(part_head(&boundary, "application/octet-stream", false));
        body.extend_from_slice(b);
        body.extend(close(&boundary));
        let parts = parse(&body, &boundary).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, a);
        assert_eq!(parts[0].content_type.as_deref(), Some("application/dicom"));
        assert_eq!(parts[1].body, b);
    }

    #[test]
    fn malformed_bodies_say_why() {
        assert!(parse(b"no delimiter", "x")
            .unwrap_err()
            .contains("no boundary"));
        assert!(parse(b"--x\r\nContent-Type: a\r\n\r\nbody", "x")
            .unwrap_err()
            .contains("closing delimiter"));
        assert!(parse(b"--x\r\nContent-Type: a", "x")
            .unwrap_err()
            .contains("blank line"));
    }

    #[test]
    fn media_types_split_into_essence_and_parameters() {
        let (e, p) = media_type("Multipart/Related; type=\"application/dicom\"; boundary=abc");
        assert_eq!(e, "multipart/related");
        assert_eq!(
            p,
            vec![
                ("type".to_string(), "application/dicom".to_string()),
                ("boundary".to_string(), "abc".to_string())
            ]
        );
    }
}
