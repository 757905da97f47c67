//! Checksums of the canonical data file, so that corrupt bytes are refused instead of trained on.
//!
//! parquet-rs 60.1 writes no Parquet page CRCs (its writer leaves the page header's `crc` field
//! empty), so the canonical writer adds its own, in two layers:
//!
//! - one CRC32 per column chunk (a row group's bytes of one column), stored in the Parquet footer
//!   as key-value metadata under [`CHUNK_CRC_KEY`]; the reader checks every chunk it reads before
//!   decoding it, and a mismatch names the file, the row group and the column;
//! - one CRC32 of the footer itself (the schema, the row counts, the chunk offsets and the chunk
//!   checksums), stored in `dataset.toml` as `footer_crc32`, checked before the footer is parsed.
//!
//! Files without them (prepared before they existed, or written by other tools) load as before,
//! unverified. Pages that do carry a Parquet page CRC (pyarrow's `write_page_checksum`, for
//! example) are verified by parquet itself (its `crc` feature).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use parquet::file::metadata::RowGroupMetaData;

/// The footer key-value entry that holds the column chunk checksums.
pub(crate) const CHUNK_CRC_KEY: &str = "crossdistil.chunk_crc32";

/// The CRC32 of every column chunk of `groups`, read back from `file`: one list per row group, in
/// column (leaf) order.
pub(crate) fn chunk_crcs(
    file: &mut File,
    groups: &[RowGroupMetaData],
) -> std::io::Result<Vec<Vec<u32>>> {
    groups
        .iter()
        .map(|g| {
            g.columns()
                .iter()
                .map(|c| {
                    let (start, len) = c.byte_range();
                    range_crc(file, start, len)
                })
                .collect()
        })
        .collect()
}

/// The CRC32 of `len` bytes of `file` from `start`.
pub fn range_crc(file: &mut File, start: u64, len: u64) -> std::io::Result<u32> {
    file.seek(SeekFrom::Start(start))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; (len as usize).min(1 << 20)];
    let mut left = len;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher.finalize())
}

/// The checksums as footer text: one line per row group, each chunk's CRC32 as 8 hex digits,
/// separated by spaces.
pub(crate) fn encode(crcs: &[Vec<u32>]) -> String {
    crcs.iter()
        .map(|g| {
            g.iter()
                .map(|c| format!("{c:08x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The inverse of [`encode`]; `None` when the text is not of that form.
pub(crate) fn decode(text: &str) -> Option<Vec<Vec<u32>>> {
    text.split('\n')
        .map(|line| {
            line.split(' ')
                .map(|h| {
                    (h.len() == 8)
                        .then(|| u32::from_str_radix(h, 16).ok())
                        .flatten()
                })
                .collect()
        })
        .collect()
}

/// Why the footer could not be checked or did not match.
#[derive(Debug)]
pub(crate) enum FooterError {
    /// The file cannot be opened.
    Open(std::io::Error),
    Io(std::io::Error),
    /// The last 8 bytes do not describe a footer that fits in the file.
    NoFooter,
    /// The footer's CRC32 differs from the expected one.
    Mismatch {
        expected: u32,
        found: u32,
    },
}

/// Checks the CRC32 of the footer of the Parquet file at `path`: the footer's bytes, its length
/// and the closing magic (the last `8 + length` bytes).
pub(crate) fn check_footer(path: &Path, expected: u32) -> Result<(), FooterError> {
    let found = footer_crc(path)?;
    if found != expected {
        return Err(FooterError::Mismatch { expected, found });
    }
    Ok(())
}

/// The CRC32 of the footer of the Parquet file at `path` (see [`check_footer`]).
pub(crate) fn footer_crc(path: &Path) -> Result<u32, FooterError> {
    let mut file = File::open(path).map_err(FooterError::Open)?;
    let size = file.metadata().map_err(FooterError::Io)?.len();
    if size < 12 {
        return Err(FooterError::NoFooter);
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::Start(size - 8))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(FooterError::Io)?;
    let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if &tail[4..] != b"PAR1" || len + 8 > size - 4 {
        return Err(FooterError::NoFooter);
    }
    range_crc(&mut file, size - 8 - len, len + 8).map_err(FooterError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let c = vec![vec![1, 0xdead_beef], vec![7, 8]];
        assert_eq!(decode(&encode(&c)).unwrap(), c);
        assert!(decode("12345678 xyz").is_none());
        assert!(decode("1234567").is_none());
    }
}
