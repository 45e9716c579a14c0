//! The `swandog sas` listing: a compact table like `swanctl --list-sas`, or JSON.
//!
//! ```
//! use swandog::report::table::json_str;
//! let mut out = String::new();
//! json_str(&mut out, "a\"b").unwrap();
//! assert_eq!(out, "\"a\\\"b\"");
//! ```

use core::fmt::{self, Write};

use crate::vici::sa::IkeSa;

/// Writes `s` as a JSON string literal.
pub fn json_str(out: &mut impl Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// `text` for a terminal: control characters other than newline and tab (an escape sequence in
/// a name, a carriage return, C1 controls) become `?`. Borrowed when there are none.
///
/// ```
/// use swandog::report::table::terminal_safe;
/// assert_eq!(terminal_safe("con1\n"), "con1\n");
/// assert_eq!(terminal_safe("c\u{1b}]0;x\u{7}on1\r\n"), "c?]0;x?on1?\n");
/// ```
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if unsafe_char(c) { '?' } else { c })
            .collect(),
    )
}

/// One IKE_SA and its children as table lines.
pub fn write_ike_text(out: &mut impl Write, ike: &IkeSa) -> fmt::Result {
    writeln!(
        out,
        "{}: #{}, {}, IKEv{}, {} -> {}{}",
        ike.name,
        ike.uniqueid,
        ike.state,
        ike.version,
        ike.local_host,
        ike.remote_host,
        if ike.initiator { " (initiator)" } else { "" }
    )?;
    for task in ike.tasks_active.names() {
        writeln!(out, "  active task: {task}")?;
    }
    for child in &ike.children {
        write!(
            out,
            "  {}: #{}, {}, in {} pkts / out {} pkts",
            child.name, child.uniqueid, child.state, child.packets_in, child.packets_out
        )?;
        if child.is_route_based() {
            write!(
                out,
                ", route-based (if-id {}/{}",
                child.if_id_in, child.if_id_out
            )?;
            if child.mark_in != 0 || child.mark_out != 0 {
                write!(out, ", mark {}/{}", child.mark_in, child.mark_out)?;
            }
            out.write_char(')')?;
        }
        out.write_char('\n')?;
    }
    if ike.children_dropped > 0 {
        writeln!(out, "  (+{} more children not shown)", ike.children_dropped)?;
    }
    Ok(())
}

/// One IKE_SA as a JSON object.
pub fn write_ike_json(out: &mut impl Write, ike: &IkeSa) -> fmt::Result {
    out.write_str("{\"name\":")?;
    json_str(out, &ike.name)?;
    write!(out, ",\"uniqueid\":{},\"state\":", ike.uniqueid)?;
    json_str(out, ike.state.as_str())?;
    write!(out, ",\"version\":{},\"local\":", ike.version)?;
    json_str(out, &ike.local_host)?;
    out.write_str(",\"remote\":")?;
    json_str(out, &ike.remote_host)?;
    write!(out, ",\"initiator\":{},\"tasks_active\":[", ike.initiator)?;
    for (i, task) in ike.tasks_active.names().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        json_str(out, task)?;
    }
    out.write_str("],\"children\":[")?;
    for (i, c) in ike.children.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str("{\"name\":")?;
        json_str(out, &c.name)?;
        write!(out, ",\"uniqueid\":{},\"state\":", c.uniqueid)?;
        json_str(out, c.state.as_str())?;
        write!(
            out,
            ",\"route_based\":{},\"if_id_in\":{},\"if_id_out\":{},\"mark_in\":{},\"mark_out\":{},\
             \"bytes_in\":{},\"bytes_out\":{},\"packets_in\":{},\"packets_out\":{}}}",
            c.is_route_based(),
            c.if_id_in,
            c.if_id_out,
            c.mark_in,
            c.mark_out,
            c.bytes_in,
            c.bytes_out,
            c.packets_in,
            c.packets_out
        )?;
    }
    out.write_str("]}")
}
