//! TensorBoard event files: `RUN/tb/events.out.tfevents.<seconds>.<host>.<pid>.<n>`, scalars a
//! run writes as it trains (`tensorboard --logdir RUN/tb`).
//!
//! The format is TensorFlow's: a sequence of records, each
//!
//! ```text
//! u64 length (little-endian) | u32 masked CRC-32C of the length | data | u32 masked CRC-32C of data
//! masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8
//! ```
//!
//! whose data is an `Event` protocol buffer: `wall_time` (field 1, double), `step` (2, varint),
//! `file_version` (3, string, the first record: `brain.Event:2`) or `summary` (5), a `Summary`
//! of `Value`s with `tag` (1, string) and `simple_value` (2, float). Three messages of a few
//! fields: encoded here by hand rather than through a protocol-buffer toolchain.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TrainError};

/// One scalar of an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The name TensorBoard groups and plots by, `train/loss` for instance.
    pub tag: String,
    /// The training step it belongs to.
    pub step: i64,
    /// The value.
    pub value: f32,
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field.
fn bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | 2), out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// An `Event` with `wall_time`, `step` and either a file version or one summary of scalars.
fn event(wall_time: f64, step: i64, version: Option<&str>, scalars: &[(&str, f32)]) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(1 << 3 | 1);
    e.extend(wall_time.to_le_bytes());
    e.push(2 << 3);
    varint(step as u64, &mut e);
    if let Some(v) = version {
        bytes_field(3, v.as_bytes(), &mut e);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut v = Vec::new();
            bytes_field(1, tag.as_bytes(), &mut v);
            v.push(2 << 3 | 5);
            v.extend(value.to_le_bytes());
            bytes_field(1, &v, &mut summary);
        }
        bytes_field(5, &summary, &mut e);
    }
    e
}

fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend(len);
    out.extend(masked_crc(&len).to_le_bytes());
    out.extend(data);
    out.extend(masked_crc(data).to_le_bytes());
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Appends scalars to a new event file in a folder; each write is flushed, so a crash loses at
/// most the scalars being written.
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<std::fs::File>,
}

impl EventWriter {
    /// A new event file in `dir` (created if needed), named as TensorFlow names them; a file of
    /// its own per process, so a resumed run adds one beside the earlier ones.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        let io = |e: std::io::Error| TrainError::run(dir, format!("cannot write events: {e}"));
        std::fs::create_dir_all(dir).map_err(io)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        // A counter tells apart the files of runs one process starts in the same second.
        static FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(
            "events.out.tfevents.{}.{host}.{}.{n}",
            now() as u64,
            std::process::id()
        );
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let mut w = EventWriter {
            path,
            file: BufWriter::new(file),
        };
        w.write(&event(now(), 0, Some("brain.Event:2"), &[]))?;
        Ok(w)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        let io = |e: std::io::Error| TrainError::run(&self.path, format!("cannot write: {e}"));
        self.file.write_all(&record(data)).map_err(io)?;
        self.file.flush().map_err(io)
    }

    /// Writes `scalars` (tag, value) at `step`, as one event.
    pub fn scalars(&mut self, step: i64, scalars: &[(&str, f32)]) -> Result<()> {
        self.write(&event(now(), step, None, scalars))
    }
}

/// Reads a varint at `*at`.
fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message: (field number, wire type, payload: the bytes of a length-delimited
/// or fixed field, or the varint's value as 8 bytes).
fn fields(b: &[u8]) -> Option<Vec<(u32, u8, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = read_varint(b, &mut at)?;
        let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
        let payload = match wire {
            0 => read_varint(b, &mut at)?.to_le_bytes().to_vec(),
            1 => {
                at += 8;
                b.get(at - 8..at)?.to_vec()
            }
            2 => {
                let n = read_varint(b, &mut at)? as usize;
                at += n;
                b.get(at - n..at)?.to_vec()
            }
            5 => {
                at += 4;
                b.get(at - 4..at)?.to_vec()
            }
            _ => return None,
        };
        out.push((field, wire, payload));
    }
    Some(out)
}

/// Every scalar of an event file, in order, the checksums verified.
pub fn read_scalars(path: &Path) -> Result<Vec<Scalar>> {
    let bad = |what: &str| TrainError::run(path, format!("not an event file: {what}"));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| TrainError::run(path, format!("cannot read: {e}")))?;
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes.get(at..at + 12).ok_or_else(|| bad("a cut record"))?;
        let len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes")) as usize;
        if masked_crc(&head[..8]).to_le_bytes() != head[8..12] {
            return Err(bad("a record length's checksum"));
        }
        let data = bytes
            .get(at + 12..at + 12 + len)
            .ok_or_else(|| bad("a cut record"))?;
        let crc = bytes
            .get(at + 12 + len..at + 16 + len)
            .ok_or_else(|| bad("a cut record"))?;
        if masked_crc(data).to_le_bytes() != crc {
            return Err(bad("a record's checksum"));
        }
        at += 16 + len;
        let event = fields(data).ok_or_else(|| bad("a malformed event"))?;
        let step = event.iter().find(|f| f.0 == 2).map_or(0, |f| {
            i64::from_le_bytes(f.2[..8].try_into().expect("8 bytes"))
        });
        for (_, _, summary) in event.iter().filter(|f| f.0 == 5) {
            for (_, _, value) in fields(summary).ok_or_else(|| bad("a malformed summary"))? {
                let v = fields(&value).ok_or_else(|| bad("a malformed value"))?;
                let tag = v
                    .iter()
                    .find(|f| f.0 == 1)
                    .map(|f| String::from_utf8_lossy(&f.2));
                let x = v.iter().find(|f| f.0 == 2 && f.1 == 5);
                if let (Some(tag), Some(x)) = (tag, x) {
                    out.push(Scalar {
                        tag: tag.into_owned(),
                        step,
                        value: f32::from_le_bytes(x.2[..4].try_into().expect("4 bytes")),
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_and_the_mask_are_tensorflows() {
        // CRC-32C of "123456789" is e3069283 (its standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // The record of an empty payload: length 0, as TensorFlow's writer frames it.
        let r = record(&[]);
        assert_eq!(r.len(), 16);
        assert_eq!(&r[..8], &[0; 8]);
    }

    #[test]
    fn scalars_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(3, &[("train/loss", 0.5), ("valid/auc", 0.75)])
            .unwrap();
        w.scalars(300, &[("train/loss", -1e-3)]).unwrap();
        let got = read_scalars(w.path()).unwrap();
        let want = [
            ("train/loss", 3, 0.5),
            ("valid/auc", 3, 0.75),
            ("train/loss", 300, -1e-3),
        ];
        assert_eq!(got.len(), 3);
        for (g, (tag, step, value)) in got.iter().zip(want) {
            assert_eq!((g.tag.as_str(), g.step, g.value), (tag, step, value));
        }
        // A flipped byte is caught.
        let mut bytes = std::fs::read(w.path()).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        std::fs::write(w.path(), bytes).unwrap();
        assert!(read_scalars(w.path()).is_err());
    }
}
