//! The tar headers Go's `archive/tar` writes for a `FileInfoHeader` with `ChownOpts{0,0}`:
//! USTAR where it fits (a long name split into prefix and name), PAX records otherwise, the
//! fields formatted as Go formats them, so the COPY layer's cache key matches a CLI build's.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

use super::walk::resolve_context;
use super::{ContextError, ContextPlan, ContextSpec, Entry, EntryKind, Source};

/// Writes the context tar to `w`, reading each file while writing it.
pub fn write_tar<W: Write>(
    plan: &ContextPlan,
    spec: &ContextSpec,
    w: W,
) -> Result<W, ContextError> {
    let root = resolve_context(&spec.context_dir)?;
    let mut out = io::BufWriter::with_capacity(64 * 1024, w);
    let mut buf = vec![0u8; 256 * 1024];
    for entry in &plan.files {
        write_entry(&mut out, &root, entry, &mut buf)?;
    }
    // The trailer: two zero blocks.
    out.write_all(&[0u8; 1024]).map_err(ContextError::Write)?;
    out.into_inner()
        .map_err(|e| ContextError::Write(e.into_error()))
}

fn write_entry<W: Write>(
    out: &mut W,
    root: &Path,
    entry: &Entry,
    buf: &mut [u8],
) -> Result<(), ContextError> {
    let (typeflag, link): (u8, &[u8]) = match &entry.kind {
        EntryKind::File { .. } => (b'0', b""),
        EntryKind::HardLink { target } => (b'1', target),
        EntryKind::Symlink { target } => (b'2', target),
        EntryKind::CharDevice => (b'3', b""),
        EntryKind::BlockDevice => (b'4', b""),
        EntryKind::Dir => (b'5', b""),
        EntryKind::Fifo => (b'6', b""),
    };
    let header = |size: u64| HeaderFields {
        name: &entry.name,
        link,
        typeflag,
        mode: i64::from(entry.mode),
        size: size as i64,
        mtime: entry.mtime,
        devmajor: entry.dev.0 as i64,
        devminor: entry.dev.1 as i64,
    };
    match &entry.source {
        Source::None => write_header(out, &header(0)).map_err(ContextError::Write),
        Source::Inline(data) => {
            write_header(out, &header(data.len() as u64)).map_err(ContextError::Write)?;
            out.write_all(data).map_err(ContextError::Write)?;
            pad(out, data.len() as u64)
        }
        Source::Disk(rel) => {
            let path = root.join(rel);
            let mut file = fs_err::File::open(&path).map_err(ContextError::Read)?;
            let size = file.metadata().map_err(ContextError::Read)?.len();
            write_header(out, &header(size)).map_err(ContextError::Write)?;
            let mut left = size;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = match file.read(&mut buf[..want]) {
                    Ok(0) => return Err(ContextError::FileChanged { path }),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ContextError::Read(e)),
                };
                out.write_all(&buf[..n]).map_err(ContextError::Write)?;
                left -= n as u64;
            }
            pad(out, size)
        }
    }
}

fn pad<W: Write>(out: &mut W, size: u64) -> Result<(), ContextError> {
    let rem = (size % 512) as usize;
    if rem != 0 {
        out.write_all(&[0u8; 512][..512 - rem])
            .map_err(ContextError::Write)?;
    }
    Ok(())
}

struct HeaderFields<'a> {
    name: &'a [u8],
    link: &'a [u8],
    typeflag: u8,
    mode: i64,
    size: i64,
    mtime: i64,
    devmajor: i64,
    devminor: i64,
}

const NAME_SIZE: usize = 100;
const PREFIX_SIZE: usize = 155;

/// Go `tar.Writer.WriteHeader` for a PAX-format header with uid/gid 0 and no user names: USTAR
/// when every field fits, else a PAX extended header and a PAX main header.
fn write_header<W: Write>(out: &mut W, h: &HeaderFields<'_>) -> io::Result<()> {
    let mut ustar = true;
    let mut pax: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let name_ascii = is_ascii(h.name);
    if !name_ascii || h.name.len() > NAME_SIZE {
        if split_ustar_path(h.name).is_none() {
            ustar = false;
        }
        pax.insert("path", h.name.to_vec());
    }
    if !is_ascii(h.link) || h.link.len() > NAME_SIZE {
        ustar = false;
        pax.insert("linkpath", h.link.to_vec());
    }
    if !fits_in_octal(12, h.size) {
        ustar = false;
        pax.insert("size", h.size.to_string().into_bytes());
    }
    if !fits_in_octal(12, h.mtime) {
        ustar = false;
        pax.insert("mtime", h.mtime.to_string().into_bytes());
    }

    let mut hdr = tar::Header::new_ustar();
    if ustar {
        let (prefix, name) = split_ustar_path(h.name).unwrap_or((b"", h.name));
        template(&mut hdr, h, name, h.link);
        format_string(&mut hdr.as_ustar_mut().expect("ustar").prefix, prefix);
    } else {
        let mut records = Vec::new();
        for (k, v) in &pax {
            records.extend_from_slice(&format_pax_record(k, v));
        }
        let mut xhdr = tar::Header::new_ustar();
        {
            let u = xhdr.as_ustar_mut().expect("ustar");
            let mut name = to_ascii(&pax_header_name(h.name));
            name.truncate(NAME_SIZE);
            while name.last() == Some(&b'/') {
                name.pop();
            }
            format_string(&mut u.name, &name);
            format_octal(&mut u.mode, 0);
            format_octal(&mut u.uid, 0);
            format_octal(&mut u.gid, 0);
            format_octal(&mut u.size, records.len() as i64);
            format_octal(&mut u.mtime, 0);
            u.typeflag = [b'x'];
        }
        set_checksum(&mut xhdr);
        out.write_all(xhdr.as_bytes())?;
        out.write_all(&records)?;
        let rem = records.len() % 512;
        if rem != 0 {
            out.write_all(&[0u8; 512][..512 - rem])?;
        }
        template(&mut hdr, h, &to_ascii(h.name), &to_ascii(h.link));
    }
    set_checksum(&mut hdr);
    out.write_all(hdr.as_bytes())
}

/// `templateV7Plus` with octal numbers.
fn template(hdr: &mut tar::Header, h: &HeaderFields<'_>, name: &[u8], link: &[u8]) {
    let u = hdr.as_ustar_mut().expect("ustar");
    u.typeflag = [h.typeflag];
    format_string(&mut u.name, name);
    format_string(&mut u.linkname, link);
    format_octal(&mut u.mode, h.mode);
    format_octal(&mut u.uid, 0);
    format_octal(&mut u.gid, 0);
    format_octal(&mut u.size, h.size);
    format_octal(&mut u.mtime, h.mtime);
    format_string(&mut u.uname, b"");
    format_string(&mut u.gname, b"");
    format_octal(&mut u.dev_major, h.devmajor);
    format_octal(&mut u.dev_minor, h.devminor);
}

/// Go's checksum field: six octal digits, NUL, space.
fn set_checksum(hdr: &mut tar::Header) {
    let bytes = hdr.as_mut_bytes();
    bytes[148..156].fill(b' ');
    let sum: i64 = bytes.iter().map(|&b| i64::from(b)).sum();
    format_octal(&mut bytes[148..155], sum);
    bytes[155] = b' ';
}

fn fits_in_octal(n: usize, x: i64) -> bool {
    x >= 0 && (n >= 22 || x < 1i64 << ((n - 1) * 3))
}

fn format_octal(b: &mut [u8], x: i64) {
    let x = if fits_in_octal(b.len(), x) { x } else { 0 };
    let s = format!("{x:0width$o}", width = b.len() - 1);
    format_string(b, s.as_bytes());
}

/// Go `formatString`: copy, NUL-terminate if room, and never leave a truncated trailing slash.
fn format_string(b: &mut [u8], s: &[u8]) {
    let n = s.len().min(b.len());
    b[..n].copy_from_slice(&s[..n]);
    if s.len() < b.len() {
        b[s.len()] = 0;
    }
    if s.len() > b.len() && b[b.len() - 1] == b'/' {
        let mut k = b.len() - 1;
        while k > 0 && s[k - 1] == b'/' {
            k -= 1;
        }
        b[k] = 0;
    }
}

fn is_ascii(s: &[u8]) -> bool {
    s.iter().all(|&c| c != 0 && c < 0x80)
}

fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&c| c != 0 && c < 0x80).collect()
}

/// `splitUSTARPath`: (prefix, name) at a slash so both fit, for ASCII names over 100 bytes.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= NAME_SIZE || !is_ascii(name) {
        return None;
    } else if length > PREFIX_SIZE + 1 {
        length = PREFIX_SIZE + 1;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&c| c == b'/')?;
    let nlen = name.len() - i - 1;
    if i == 0 || nlen > NAME_SIZE || nlen == 0 || i > PREFIX_SIZE {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// `path.Join(dir, "PaxHeaders.0", file)` for a clean relative name.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let split = name.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
    let (dir, file) = name.split_at(split);
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    let mut out = Vec::new();
    if !dir.is_empty() {
        out.extend_from_slice(dir);
        out.push(b'/');
    }
    out.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        out.push(b'/');
        out.extend_from_slice(file);
    }
    out
}

/// `formatPAXRecord`: "<len> key=value\n", the length counting itself.
fn format_pax_record(k: &str, v: &[u8]) -> Vec<u8> {
    let mut size = k.len() + v.len() + 3;
    size += size.to_string().len();
    let make = |size: usize| {
        let mut r = format!("{size} {k}=").into_bytes();
        r.extend_from_slice(v);
        r.push(b'\n');
        r
    };
    let record = make(size);
    if record.len() != size {
        make(record.len())
    } else {
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(name: &[u8], typeflag: u8, size: i64, mtime: i64, link: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let h = HeaderFields {
            name,
            link,
            typeflag,
            mode: 0o644,
            size,
            mtime,
            devmajor: 0,
            devminor: 0,
        };
        write_header(&mut out, &h).unwrap();
        out
    }

    #[test]
    fn a_short_name_is_one_ustar_block_with_go_field_formatting() {
        let b = header_bytes(b"src/main.rs", b'0', 5, 1_700_000_000, b"");
        assert_eq!(b.len(), 512);
        assert_eq!(&b[0..12], b"src/main.rs\0");
        assert_eq!(&b[100..108], b"0000644\0");
        assert_eq!(&b[108..116], b"0000000\0");
        assert_eq!(&b[116..124], b"0000000\0");
        assert_eq!(&b[124..136], b"00000000005\0");
        assert_eq!(&b[136..148], b"14524770400\0");
        assert_eq!(b[155], b' ');
        assert_eq!(b[154], 0);
        assert_eq!(b[156], b'0');
        assert_eq!(&b[257..265], b"ustar\x0000");
        assert_eq!(&b[265..297], &[0u8; 32]);
        assert_eq!(&b[329..345], b"0000000\x000000000\0");
        let sum: u32 = b
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(c)
                }
            })
            .sum();
        assert_eq!(&b[148..155], format!("{sum:06o}\0").as_bytes());
    }

    #[test]
    fn a_long_ascii_name_is_split_into_prefix_and_name() {
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(20));
        let b = header_bytes(name.as_bytes(), b'0', 0, 0, b"");
        assert_eq!(b.len(), 512);
        assert_eq!(&b[0..21], format!("{}\0", "f".repeat(20)).as_bytes());
        assert_eq!(&b[345..466], format!("{}\0", "d".repeat(120)).as_bytes());
    }

    #[test]
    fn a_non_ascii_name_gets_a_pax_path_record() {
        let b = header_bytes("dir/ünï.txt".as_bytes(), b'0', 0, 0, b"");
        assert_eq!(b.len(), 512 * 3);
        assert_eq!(&b[0..22], b"dir/PaxHeaders.0/n.txt");
        assert_eq!(b[156], b'x');
        let record = "22 path=dir/ünï.txt\n";
        assert_eq!(&b[512..512 + record.len()], record.as_bytes());
        assert_eq!(&b[1024..1034], b"dir/n.txt\0");
    }

    #[test]
    fn an_unsplittable_long_name_gets_a_pax_path_record() {
        let name = "x".repeat(150);
        let b = header_bytes(name.as_bytes(), b'0', 0, 0, b"");
        assert_eq!(b.len(), 512 * 3);
        let record = format!("160 path={name}\n");
        assert_eq!(&b[512..512 + record.len()], record.as_bytes());
        assert_eq!(&b[1024..1124], "x".repeat(100).as_bytes());
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        assert_eq!(format_pax_record("path", b"abcde"), b"14 path=abcde\n");
        assert_eq!(format_pax_record("path", &[b'a'; 92]).len(), 102);
        assert!(format_pax_record("path", &[b'a'; 92]).starts_with(b"102 "));
    }
}
