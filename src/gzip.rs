//! One gzip member (RFC 1952) spliced from deflate pieces compressed at different times.
//!
//! A fragment of the exposition is compressed once, when it is recorded ([`Deflated::new`]);
//! a scrape copies those bytes and compresses only the live text between them ([`GzipBody`]).
//!
//! Why the splice is valid: each piece is a raw deflate stream (RFC 1951) of its own, ended by a
//! sync flush and never by a final block. A sync flush ends the piece's last block on a byte
//! boundary (with the empty stored block `00 00 ff ff`), and a piece's back-references never
//! reach before its own start, so pieces laid end to end form one deflate stream. The body
//! closes it with an empty final block and the gzip trailer, whose CRC-32 is combined from the
//! pieces' CRCs without reading their text again.
//!
//! The result is a single gzip member, not a series of members, so that every gzip reader reads
//! all of it, also those that stop after the first member.

use std::fmt;

use flate2::{Compress, Compression, FlushCompress};

/// Compression of recorded fragments, paid once per data change and off the scrape path. On
/// a 13.5 MB `/metrics` body (100k series) cut into 200 fragments, miniz_oxide on this machine
/// (`examples/gzip_splice.rs`): level 1 makes 1.32 MB in 19 ms, level 5 1.08 MB in 60 ms,
/// level 6 1.06 MB in 83 ms, level 9 1.06 MB in 123 ms. The bytes are held next to the text for
/// as long as the data lasts and sent by every scrape, so level 6 (20% fewer than level 1);
/// level 9 saves 0.2% more for half as much time again.
const RECORD_LEVEL: Compression = Compression::new(6);

/// Compression of live text, paid by every scrape: the fastest level.
const LIVE_LEVEL: Compression = Compression::new(1);

/// Live text shorter than this is written as a stored block (5 bytes of framing) instead of
/// being compressed: a reset of the compressor clears about 300 KB of its tables (6 us here),
/// too much for the few bytes it would save.
const STORE_BELOW: usize = 64;

/// ID1 ID2, CM = deflate, FLG = none, MTIME = 0 (none), XFL = 0, OS = 255 (unknown).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// An empty final block: BFINAL = 1, BTYPE = 01 (fixed Huffman codes), then the 7-bit
/// end-of-block code 0000000, padded to the byte.
const LAST_BLOCK: [u8; 2] = [0x03, 0x00];

/// CRC-32 and ISIZE.
const TRAILER_LEN: usize = 8;

/// Text compressed once into a piece of a gzip body: deflate blocks ending with a sync flush,
/// with the CRC-32 and length of the text. [`Deflated::default`] is the empty piece, made
/// without allocating.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Deflated {
    bytes: Box<[u8]>,
    crc: u32,
    len: u64,
}

impl Deflated {
    /// Compresses `text` at the level chosen for recorded fragments, with this thread's
    /// compressor: a run records dozens of parts, and each fresh compressor allocates and frees
    /// about 300 KB of tables.
    pub fn new(text: &[u8]) -> Self {
        thread_local! {
            static COMPRESSOR: std::cell::RefCell<Compress> =
                std::cell::RefCell::new(Compress::new(RECORD_LEVEL, false));
        }
        if text.is_empty() {
            return Self::default();
        }
        let mut bytes = Vec::new();
        let reused = COMPRESSOR
            .try_with(|c| match c.try_borrow_mut() {
                Ok(mut compressor) => {
                    compressor.reset();
                    deflate(&mut compressor, text, &mut bytes);
                    true
                }
                Err(_) => false,
            })
            .unwrap_or(false);
        if !reused {
            return Self::with_level(text, RECORD_LEVEL);
        }
        Self {
            bytes: bytes.into_boxed_slice(),
            crc: crc32fast::hash(text),
            len: text.len() as u64,
        }
    }

    /// Compresses `text` at `level` (for measurements; [`Deflated::new`] is the choice).
    pub fn with_level(text: &[u8], level: Compression) -> Self {
        if text.is_empty() {
            return Self::default();
        }
        let mut bytes = Vec::new();
        deflate(&mut Compress::new(level, false), text, &mut bytes);
        Self {
            bytes: bytes.into_boxed_slice(),
            crc: crc32fast::hash(text),
            len: text.len() as u64,
        }
    }

    /// Length of the text.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes this piece holds on the heap: its compressed bytes.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }
}

impl fmt::Debug for Deflated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflated")
            .field("len", &self.len)
            .field("compressed", &self.bytes.len())
            .field("crc", &format_args!("{:08x}", self.crc))
            .finish()
    }
}

/// A gzip body under construction: pieces compressed earlier ([`GzipBody::push_deflated`]) and
/// live text ([`GzipBody::push_text`]) in the order they are pushed. Consecutive live text is
/// compressed as one piece when the next recorded piece or [`GzipBody::finish`] comes.
pub struct GzipBody {
    out: Vec<u8>,
    /// CRC-32 and length of all the text pushed so far, live text included.
    crc: crc32fast::Hasher,
    /// Live text not yet compressed.
    live: Vec<u8>,
    /// Made at the first live piece worth compressing, and reused.
    compressor: Option<Compress>,
}

impl GzipBody {
    /// A body with room for `capacity` bytes of gzip output before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out =
            Vec::with_capacity(capacity.max(HEADER.len() + LAST_BLOCK.len() + TRAILER_LEN));
        out.extend_from_slice(&HEADER);
        Self {
            out,
            crc: crc32fast::Hasher::new(),
            live: Vec::new(),
            compressor: None,
        }
    }

    /// Appends a piece compressed earlier: copies its bytes, and combines its CRC.
    pub fn push_deflated(&mut self, piece: &Deflated) {
        if piece.is_empty() {
            return;
        }
        self.compress_live();
        self.out.extend_from_slice(&piece.bytes);
        self.crc.combine(&crc32fast::Hasher::new_with_initial_len(
            piece.crc, piece.len,
        ));
    }

    /// Appends live text, compressed with the live text next to it.
    pub fn push_text(&mut self, text: &[u8]) {
        self.crc.update(text);
        self.live.extend_from_slice(text);
    }

    /// Appends text in stored (uncompressed) blocks: for text written at the scrape that is too
    /// large to compress within a scrape's budget (the ages: about 14% of the exposition, which
    /// at level 1 would cost more CPU than the rest of a gzip scrape). Costs a copy and a CRC.
    pub fn push_stored(&mut self, text: &[u8]) {
        if text.is_empty() {
            return;
        }
        self.compress_live();
        self.crc.update(text);
        store(text, &mut self.out);
    }

    /// The gzip member: header, pieces, an empty final block, CRC-32 and length mod 2^32.
    pub fn finish(mut self) -> Vec<u8> {
        self.compress_live();
        let mut out = self.out;
        out.extend_from_slice(&LAST_BLOCK);
        // ISIZE is the length modulo 2^32 (RFC 1952): the truncation is the format.
        let isize = self.crc.total_len() as u32;
        out.extend_from_slice(&self.crc.finalize().to_le_bytes());
        out.extend_from_slice(&isize.to_le_bytes());
        out
    }

    fn compress_live(&mut self) {
        if self.live.is_empty() {
            return;
        }
        if self.live.len() < STORE_BELOW {
            store(&self.live, &mut self.out);
        } else {
            let compressor = self
                .compressor
                .get_or_insert_with(|| Compress::new(LIVE_LEVEL, false));
            if compressor.total_in() > 0 {
                compressor.reset();
            }
            deflate(compressor, &self.live, &mut self.out);
        }
        self.live.clear();
    }
}

/// Appends `text` to `out` as deflate blocks compressed by `compressor` (fresh or reset), ended
/// by a sync flush. Should the compressor fail (miniz_oxide only does on a bad parameter) or
/// stop making progress, the text goes in stored blocks instead: the body stays valid, only
/// larger, and neither the recording nor the scrape path has an error to handle.
fn deflate(compressor: &mut Compress, text: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    if !try_deflate(compressor, text, out) {
        out.truncate(start);
        compressor.reset();
        store(text, out);
    }
}

/// Output room given to each call of the compressor, beyond a quarter of the input left.
const SLACK: usize = 256;

/// False when the compressor returned an error or stopped making progress.
///
/// The compressor writes into a zeroed window of `out` sized to the input left, through
/// `Compress::compress`, and not through `compress_vec`: with the miniz_oxide backend,
/// `compress_vec` zeroes all of the vector's spare capacity on every call, which for a body
/// reserved up front costs more than the compression (measured on 200 live pieces of 9.4 KB
/// into a 4 MB body: 75 ms against 5 ms).
fn try_deflate(compressor: &mut Compress, text: &[u8], out: &mut Vec<u8>) -> bool {
    let mut rest = text;
    loop {
        let start = out.len();
        let room = rest.len() / 4 + SLACK;
        out.resize(start + room, 0);
        let (in_before, out_before) = (compressor.total_in(), compressor.total_out());
        let result = compressor.compress(rest, &mut out[start..], FlushCompress::Sync);
        let written = usize::try_from(compressor.total_out() - out_before).unwrap_or(usize::MAX);
        out.truncate(start + written.min(room));
        if result.is_err() || written > room {
            return false;
        }
        let consumed = compressor.total_in() - in_before;
        match usize::try_from(consumed).ok().and_then(|n| rest.get(n..)) {
            Some(remaining) => rest = remaining,
            None => return false,
        }
        // The flush is complete once all the input is in and the compressor returned with
        // room to spare; a call that filled its window may have more of the flush to write.
        if rest.is_empty() && written < room {
            return true;
        }
        if consumed == 0 && written == 0 {
            return false;
        }
    }
}

/// Appends `text` to `out` as stored (uncompressed) non-final blocks of at most 65,535 bytes.
/// Only valid on a byte boundary, which is where every piece ends.
fn store(text: &[u8], out: &mut Vec<u8>) {
    for chunk in text.chunks(usize::from(u16::MAX)) {
        // At most u16::MAX by construction of the chunks.
        let len = chunk.len() as u16;
        out.push(0); // BFINAL = 0, BTYPE = 00, then padding to the byte
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::io::{Read as _, Write as _};
    use std::process::{Command, Stdio};

    use flate2::bufread::GzDecoder;

    use super::*;

    /// Text shaped like `/metrics`: family headers, then series with long, repetitive labels.
    fn exposition(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
        let mut text = String::with_capacity(len + 256);
        while text.len() < len {
            let family = [
                "iam_access_key_age_seconds",
                "s3_bucket_public",
                "ec2_instance_info",
            ][rng.usize(0..3)];
            let _ = writeln!(text, "# HELP infraaudit_{family} What it measures.");
            let _ = writeln!(text, "# TYPE infraaudit_{family} gauge");
            for _ in 0..rng.usize(1..200) {
                let _ = writeln!(
                    text,
                    "infraaudit_{family}{{account_id=\"{}\",user=\"user-{}\",access_key_id=\"AKIA{:016X}\"}} {}",
                    rng.u64(100_000_000_000..1_000_000_000_000),
                    rng.u32(0..5_000),
                    rng.u64(..),
                    rng.u32(..),
                );
            }
        }
        text.truncate(len);
        text.into_bytes()
    }

    fn random_bytes(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
        std::iter::repeat_with(|| rng.u8(..)).take(len).collect()
    }

    /// Decodes with a reader of a single member, and asserts that the member is the whole body.
    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut decoder = GzDecoder::new(gz);
        let mut text = Vec::new();
        decoder.read_to_end(&mut text).expect("a valid gzip member");
        let rest = decoder.into_inner();
        assert!(
            rest.is_empty(),
            "{} bytes after the first member",
            rest.len()
        );
        text
    }

    /// `text` cut into pieces shorter than `below` bytes, some of them empty.
    fn cut<'a>(text: &'a [u8], rng: &mut fastrand::Rng, below: usize) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let end = (at + rng.usize(0..below)).min(text.len());
            pieces.push(&text[at..end]);
            at = end;
        }
        pieces
    }

    /// Pushes `pieces` in order, each as a recorded piece, stored or live text as `kinds` says.
    fn splice(pieces: &[&[u8]], kinds: &mut impl FnMut() -> u8) -> Vec<u8> {
        let mut body = GzipBody::with_capacity(0);
        for piece in pieces {
            match kinds() % 4 {
                0 => {
                    let deflated = Deflated::new(piece);
                    assert_eq!(deflated.len(), piece.len() as u64);
                    assert_eq!(deflated.crc, crc32fast::hash(piece));
                    if !piece.is_empty() {
                        assert!(
                            deflated.bytes.ends_with(&[0, 0, 0xff, 0xff]),
                            "no sync flush"
                        );
                    }
                    body.push_deflated(&deflated);
                }
                1 => body.push_deflated(&Deflated::with_level(piece, Compression::fast())),
                2 => body.push_stored(piece),
                _ => body.push_text(piece),
            }
        }
        body.finish()
    }

    #[test]
    fn random_splits_into_recorded_and_live_pieces_decode_to_the_text() {
        for seed in 0..120 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let len = match rng.u8(0..4) {
                0 => rng.usize(0..100),
                _ => rng.usize(0..120_000),
            };
            let text = if seed % 6 == 0 {
                random_bytes(&mut rng, len)
            } else {
                exposition(&mut rng, len)
            };
            // Cuts may repeat, which makes empty pieces.
            let mut cuts: Vec<usize> = (0..rng.usize(0..40)).map(|_| rng.usize(0..=len)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([len]) {
                pieces.push(&text[at..cut]);
                at = cut;
            }
            let gz = splice(&pieces, &mut || rng.u8(..));
            assert!(gunzip(&gz) == text, "seed {seed}: the decoded text differs");
        }
    }

    const EMPTY_MEMBER: [u8; 20] = [
        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, // header
        0x03, 0x00, // empty final block
        0, 0, 0, 0, 0, 0, 0, 0, // CRC-32 and length of nothing
    ];

    #[test]
    fn an_empty_body_or_empty_pieces_make_the_empty_member() {
        assert_eq!(GzipBody::with_capacity(0).finish(), EMPTY_MEMBER);
        assert!(gunzip(&EMPTY_MEMBER).is_empty());
        let mut body = GzipBody::with_capacity(100);
        body.push_deflated(&Deflated::default());
        body.push_text(b"");
        body.push_deflated(&Deflated::new(b""));
        assert_eq!(body.finish(), EMPTY_MEMBER);
        assert_eq!(Deflated::new(b"").heap_bytes(), 0);
    }

    #[test]
    fn one_piece_of_each_kind() {
        let text = exposition(&mut fastrand::Rng::with_seed(1), 50_000);
        for kind in 0..3 {
            assert!(
                gunzip(&splice(&[&text], &mut || kind)) == text,
                "kind {kind}"
            );
        }
        // Live text under STORE_BELOW is stored, at and over it compressed.
        for len in [1, STORE_BELOW - 1, STORE_BELOW, STORE_BELOW + 1] {
            assert_eq!(gunzip(&splice(&[&text[..len]], &mut || 2)), &text[..len]);
        }
    }

    #[test]
    fn many_tiny_pieces() {
        let mut rng = fastrand::Rng::with_seed(2);
        let text = exposition(&mut rng, 40_000);
        let pieces = cut(&text, &mut rng, 4);
        assert!(pieces.len() > 10_000);
        assert!(gunzip(&splice(&pieces, &mut || rng.u8(..))) == text);
    }

    #[test]
    fn a_10_mb_piece_recorded_or_live() {
        let text = exposition(&mut fastrand::Rng::with_seed(3), 10 << 20);
        for kind in [0, 3] {
            let gz = splice(&[b"before\n", &text, b"after\n"], &mut || kind);
            let decoded = gunzip(&gz);
            assert!(decoded.len() == text.len() + 13, "kind {kind}");
            assert!(decoded[7..decoded.len() - 6] == text, "kind {kind}");
            // Compressed, not stored.
            assert!(gz.len() < text.len() / 2, "kind {kind}: {} bytes", gz.len());
        }
    }

    /// The fallback when the compressor fails: stored blocks, here from a compressor that has
    /// already finished its stream and so can make no progress.
    #[test]
    fn a_failing_compressor_falls_back_to_stored_blocks() {
        let mut finished = Compress::new(Compression::fast(), false);
        let mut scratch = Vec::with_capacity(64);
        let status = finished.compress_vec(b"x", &mut scratch, FlushCompress::Finish);
        assert!(
            matches!(status, Ok(flate2::Status::StreamEnd)),
            "{status:?}"
        );

        let mut rng = fastrand::Rng::with_seed(4);
        // Over two full stored blocks, to cross their 65,535-byte limit.
        let text = random_bytes(&mut rng, 2 * usize::from(u16::MAX) + 10);
        let mut body = GzipBody::with_capacity(0);
        body.push_deflated(&Deflated::new(b"first\n"));
        let start = body.out.len();
        deflate(&mut finished, &text, &mut body.out);
        body.crc.update(&text);
        assert_eq!(
            body.out.len() - start,
            text.len() + 3 * 5,
            "not three stored blocks"
        );
        assert_eq!(body.out[start..start + 5], [0, 0xff, 0xff, 0, 0]);
        body.push_text(b"last\n");
        let decoded = gunzip(&body.finish());
        assert!(decoded == [&b"first\n"[..], &text, b"last\n"].concat());
        // Reset by the fallback, the compressor works again.
        let mut out = Vec::new();
        assert!(try_deflate(&mut finished, b"again", &mut out));
    }

    /// The decoder checks the trailer: the tests above can fail.
    #[test]
    fn a_wrong_crc_or_length_is_rejected() {
        let mut body = GzipBody::with_capacity(0);
        body.push_deflated(&Deflated::new(b"recorded\n"));
        body.push_text(b"live\n");
        let gz = body.finish();
        assert_eq!(gunzip(&gz), b"recorded\nlive\n");
        for at in [gz.len() - 8, gz.len() - 1] {
            let mut bad = gz.clone();
            bad[at] ^= 1;
            let mut decoded = Vec::new();
            let result = GzDecoder::new(&bad[..]).read_to_end(&mut decoded);
            assert!(result.is_err(), "byte {at} flipped, still read");
        }
    }

    /// Runs `program` with `input` on stdin; its stdout, or a failure naming it.
    fn run(program: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("this test needs `{program}`, which did not start: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().expect("the child's output");
        let written = writer.join().expect("the writer thread");
        if !output.status.success() {
            return Err(format!(
                "{program} {args:?}: {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        written.map_err(|e| format!("{program} {args:?}: writing stdin: {e}"))?;
        Ok(output.stdout)
    }

    /// Reads the body with `zlib.decompressobj(wbits=31)`, which stops after one member, checks
    /// that nothing follows it, and compares with `gzip.decompress`.
    const PYTHON: &str = "
import gzip, sys, zlib
data = sys.stdin.buffer.read()
d = zlib.decompressobj(wbits=31)
one = d.decompress(data) + d.flush()
if not d.eof or d.unused_data:
    sys.exit('not one whole gzip member')
if gzip.decompress(data) != one:
    sys.exit('gzip.decompress reads other text')
sys.stdout.buffer.write(one)
";

    #[test]
    fn gzip_and_python_read_the_body() {
        let mut rng = fastrand::Rng::with_seed(5);
        let text = exposition(&mut rng, 3 << 20);
        let pieces = cut(&text, &mut rng, 100_000);
        for (name, text, gz) in [
            ("empty", Vec::new(), EMPTY_MEMBER.to_vec()),
            ("spliced", text.clone(), splice(&pieces, &mut || rng.u8(..))),
        ] {
            run("gzip", &["-t"], &gz).unwrap_or_else(|e| panic!("{name}: {e}"));
            let decoded = run("gzip", &["-dc"], &gz).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(decoded == text, "{name}: gzip -dc reads other text");
            let decoded =
                run("python3", &["-c", PYTHON], &gz).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(decoded == text, "{name}: python reads other text");
        }
        // The tools do check: a flipped CRC bit fails both.
        let mut bad = splice(&pieces[..3], &mut || 0);
        let crc_at = bad.len() - 8;
        bad[crc_at] ^= 1;
        assert!(
            run("gzip", &["-t"], &bad).is_err(),
            "gzip -t passed a wrong CRC"
        );
        assert!(
            run("python3", &["-c", PYTHON], &bad).is_err(),
            "python passed a wrong CRC"
        );
    }
}
