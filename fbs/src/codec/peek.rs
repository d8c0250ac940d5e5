//! Reading a request id out of a payload that failed verification.

use super::*;

/// Reads the id of a Request from a payload that failed verification, with every offset bounds
/// checked, so the receiver can still answer the request with an error. `None` when the bytes do
/// not lead to a Request table with an id field.
pub fn peek_request_id(buf: &[u8]) -> Option<u32> {
    // Message { data_type: u8 (field 0), data: offset (field 1) }; Body::Request = 1.
    // Request { id: u32 (field 0), ... }.
    let root = read_u32(buf, 0)? as usize;
    let data_type_pos = field_pos(buf, root, 0)?;
    if *buf.get(data_type_pos?)? != fb_msg::Body::Request.0 {
        return None;
    }
    let data_pos = field_pos(buf, root, 1)??;
    let request = data_pos.checked_add(read_u32(buf, data_pos)? as usize)?;
    match field_pos(buf, request, 0)? {
        Some(pos) => read_u32(buf, pos),
        None => Some(0), // id absent = default 0
    }
}

pub(super) fn read_u32(buf: &[u8], pos: usize) -> Option<u32> {
    let b = buf.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub(super) fn read_u16(buf: &[u8], pos: usize) -> Option<u16> {
    let b = buf.get(pos..pos.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Absolute position of field `index` of the table at `table`: `Some(None)` when the vtable says
/// the field is absent, `None` when the bytes are out of bounds.
pub(super) fn field_pos(buf: &[u8], table: usize, index: usize) -> Option<Option<usize>> {
    let soffset = read_u32(buf, table)? as i32 as i64;
    let vtable = usize::try_from(table as i64 - soffset).ok()?;
    let vtable_len = read_u16(buf, vtable)? as usize;
    let entry = 4 + 2 * index;
    if entry + 2 > vtable_len {
        return Some(None);
    }
    let off = read_u16(buf, vtable + entry)? as usize;
    if off == 0 {
        return Some(None);
    }
    Some(Some(table.checked_add(off)?))
}
