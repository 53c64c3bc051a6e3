//! The protobuf wire format, as much of it as warden reads ONNX files with: fields
//! keyed by number and wire type, varints, length-delimited bytes. [`crate::graph_facts`] reads
//! facts through it, so it needs no protobuf code generator.

/// One field's value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field<'a> {
    Varint(u64),
    /// Length-delimited: a string, bytes, an embedded message or a packed repeated field.
    Bytes(&'a [u8]),
    /// A 32-bit value (wire type 5), such as a `float` attribute.
    Fixed32(u32),
    Fixed64,
}

/// Every top-level field of one protobuf message, or `None` if the bytes are malformed.
pub(crate) fn fields(mut message: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !message.is_empty() {
        let (key, rest) = varint(message)?;
        let (number, wire_type) = (key >> 3, key & 7);
        let (field, rest) = match wire_type {
            0 => {
                let (value, rest) = varint(rest)?;
                (Field::Varint(value), rest)
            }
            1 => (Field::Fixed64, rest.get(8..)?),
            2 => {
                let (length, rest) = varint(rest)?;
                let length = usize::try_from(length).ok()?;
                (Field::Bytes(rest.get(..length)?), rest.get(length..)?)
            }
            5 => {
                let bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
                (Field::Fixed32(u32::from_le_bytes(bytes)), rest.get(4..)?)
            }
            _ => return None,
        };
        out.push((number, field));
        message = rest;
    }
    Some(out)
}

/// One varint and the bytes after it.
pub(crate) fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[index + 1..]));
        }
    }
    None
}

/// The values of a repeated integer field: one varint, or a packed run of them.
pub(crate) fn varints(value: &Field<'_>) -> Option<Vec<i64>> {
    match value {
        Field::Varint(v) => Some(vec![*v as i64]),
        Field::Bytes(packed) => {
            let mut packed = *packed;
            let mut out = Vec::new();
            while !packed.is_empty() {
                let (v, rest) = varint(packed)?;
                out.push(v as i64);
                packed = rest;
            }
            Some(out)
        }
        _ => None,
    }
}
