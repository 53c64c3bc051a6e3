//! The protobuf wire format, as much of it as warden reads and writes ONNX files with: fields
//! keyed by number and wire type, varints, length-delimited bytes. [`crate::graph_facts`] reads
//! facts through it and [`crate::zipmap`] rewrites through it, so neither needs a protobuf code
//! generator, and a rewrite can copy every field it does not touch byte for byte.

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

/// One field of a message as written: its number, its value, and all its bytes (key included).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span<'a> {
    pub number: u64,
    pub value: Field<'a>,
    pub raw: &'a [u8],
}

/// Every top-level field of one protobuf message, in order, or `None` if the bytes are
/// malformed.
pub(crate) fn spans(mut message: &[u8]) -> Option<Vec<Span<'_>>> {
    let mut out = Vec::new();
    while !message.is_empty() {
        let (key, rest) = varint(message)?;
        let (number, wire_type) = (key >> 3, key & 7);
        let (value, rest) = match wire_type {
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
        let raw = &message[..message.len() - rest.len()];
        out.push(Span { number, value, raw });
        message = rest;
    }
    Some(out)
}

/// Every top-level field of one protobuf message, as `(number, value)`, or `None` if the bytes
/// are malformed.
pub(crate) fn fields(message: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    Some(
        spans(message)?
            .into_iter()
            .map(|span| (span.number, span.value))
            .collect(),
    )
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

/// Appends `value` as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends field `number` as a varint (wire type 0).
pub(crate) fn put_varint_field(out: &mut Vec<u8>, number: u64, value: u64) {
    put_varint(out, number << 3);
    put_varint(out, value);
}

/// Appends field `number` as length-delimited bytes (wire type 2): a string or a message.
pub(crate) fn put_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_varint(out, (number << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_field_by_field() {
        let mut message = Vec::new();
        put_varint_field(&mut message, 1, 300);
        put_bytes(&mut message, 7, b"graph");
        put_varint_field(&mut message, 123_456, u64::MAX);
        let spans = spans(&message).unwrap();
        assert_eq!(spans.len(), 3);
        assert!(matches!(spans[0].value, Field::Varint(300)));
        assert!(matches!(spans[1].value, Field::Bytes(b"graph")));
        assert!(matches!(spans[2].value, Field::Varint(u64::MAX)));
        assert_eq!(spans[2].number, 123_456);
        // The spans tile the message: copying them back is the message.
        assert_eq!(
            spans
                .iter()
                .flat_map(|s| s.raw)
                .copied()
                .collect::<Vec<u8>>(),
            message
        );
        assert!(super::spans(&message[..message.len() - 1]).is_none());
    }
}
