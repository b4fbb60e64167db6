//! Where an HTTP/1 message body ends, for those that pass bodies on as they are: the relay
//! (a chunked body stays chunked) and the desync sniffer (which only looks for the next
//! head). Either needs only the end: a length to count down, or the chunked framing followed
//! byte by byte until its last chunk and trailers. The general path's exchange with a target
//! takes the chunks' data out (`ChunkedEnd::decode`) with the same state machine, and the
//! relay counts a response body down with `Remaining`.

use std::ops::Range;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// This many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes its connection (responses only).
    Close,
}

/// A chunked body that does not follow RFC 9112 §7.1.
#[derive(Debug, PartialEq, Eq)]
pub struct BadChunk;

/// Bounds on what is not data: a chunk extension, and the trailer section.
const MAX_EXTENSION: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: the size so far and whether it has a digit yet.
    #[default]
    Size,
    /// In a chunk extension, up to its CR.
    Extension,
    /// After a chunk-size line's CR.
    SizeLf,
    /// In chunk data: this many bytes left.
    Data(u64),
    /// After chunk data: its CRLF.
    DataCr,
    DataLf,
    /// In a trailer line, or at the blank line that ends the body.
    Trailer,
    TrailerLf,
    Done,
}

/// Follows a chunked body across reads.
#[derive(Debug, Default)]
pub struct ChunkedEnd {
    state: State,
    size: u64,
    digits: usize,
    /// Bytes of the current extension or trailer section.
    other: usize,
    /// Bytes of the current trailer line.
    line: usize,
}

impl ChunkedEnd {
    /// Consumes the next `bytes` of the body; `Some(n)` when the body ends after `bytes[..n]`.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, BadChunk> {
        let mut at = 0;
        while at < bytes.len() {
            let decoded = self.decode(&bytes[at..])?;
            at += decoded.taken;
            if decoded.done {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// Consumes the body's next `bytes` up to the end of the first run of chunk data in them,
    /// or to the body's end, or to their end: what they held.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Decoded, BadChunk> {
        let mut i = 0;
        let mut trailers = None;
        while i < bytes.len() {
            if let State::Data(left) = self.state {
                // Data is taken whole, not looked at byte by byte.
                let take = left.min((bytes.len() - i) as u64);
                self.state = if take == left {
                    State::DataCr
                } else {
                    State::Data(left - take)
                };
                let data = i..i + take as usize;
                return Ok(Decoded::part(data.end, data, trailers));
            }
            if matches!(self.state, State::Trailer | State::TrailerLf) {
                trailers.get_or_insert(i);
            }
            let b = bytes[i];
            i += 1;
            self.state = self.next(b)?;
            if self.state == State::Done {
                let mut decoded = Decoded::part(i, i..i, trailers);
                decoded.done = true;
                return Ok(decoded);
            }
        }
        Ok(Decoded::part(i, i..i, trailers))
    }

    /// The state after byte `b` (not in chunk data).
    fn next(&mut self, b: u8) -> Result<State, BadChunk> {
        Ok(match (self.state, b) {
            (State::Size, _) if b.is_ascii_hexdigit() => {
                // 15 hex digits is more than any body; more could overflow.
                if self.digits == 15 {
                    return Err(BadChunk);
                }
                self.size = self.size * 16 + u64::from(hex(b));
                self.digits += 1;
                State::Size
            }
            (State::Size, b';' | b' ' | b'\t') if self.digits > 0 => State::Extension,
            (State::Size, b'\r') if self.digits > 0 => State::SizeLf,
            (State::Extension, b'\r') => State::SizeLf,
            (State::Extension, _) if b != b'\n' && self.other < MAX_EXTENSION => {
                self.other += 1;
                State::Extension
            }
            (State::SizeLf, b'\n') => {
                let size = std::mem::take(&mut self.size);
                (self.digits, self.other) = (0, 0);
                if size == 0 {
                    State::Trailer
                } else {
                    State::Data(size)
                }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size,
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::Trailer, _) if b != b'\n' && self.other < MAX_TRAILERS => {
                self.other += 1;
                self.line += 1;
                State::Trailer
            }
            (State::TrailerLf, b'\n') if std::mem::take(&mut self.line) == 0 => State::Done,
            (State::TrailerLf, b'\n') => State::Trailer,
            _ => return Err(BadChunk),
        })
    }
}

/// What [`ChunkedEnd::decode`] found in the bytes it took.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// How many bytes it took from the front.
    pub taken: usize,
    /// Where they hold chunk data: the last of them, when any.
    pub data: Range<usize>,
    /// Where they hold the trailer section (its field lines and the blank line ending it).
    pub trailers: Range<usize>,
    /// The body ended with them.
    pub(crate) done: bool,
}

impl Decoded {
    /// `trailers` started at that index, if they did: they run to the end of what was taken.
    fn part(taken: usize, data: Range<usize>, trailers: Option<usize>) -> Self {
        Self {
            taken,
            data,
            trailers: trailers.map_or(taken..taken, |start| start..taken),
            done: false,
        }
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// How much of a body passed on as it is still to come.
pub(crate) struct Remaining {
    framing: Framing,
    left: u64,
    chunks: ChunkedEnd,
    /// The body has ended (a close-delimited one never knows: its sender's close ends it).
    pub(crate) done: bool,
}

impl Remaining {
    pub(crate) fn new(framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Self {
            framing,
            left,
            chunks: ChunkedEnd::default(),
            done: matches!(framing, Framing::Empty | Framing::Length(0)),
        }
    }

    /// Takes the next `bytes` read: how many of them are body, and whether more came than
    /// the body holds.
    pub(crate) fn advance(&mut self, bytes: &[u8]) -> Result<(usize, bool), BadChunk> {
        let end = match self.framing {
            Framing::Empty => 0,
            Framing::Close => bytes.len(),
            Framing::Length(_) => {
                let end = usize::try_from(self.left).map_or(bytes.len(), |l| l.min(bytes.len()));
                self.left -= end as u64;
                self.done = self.left == 0;
                end
            }
            Framing::Chunked => match self.chunks.scan(bytes)? {
                Some(end) => {
                    self.done = true;
                    end
                }
                None => bytes.len(),
            },
        };
        Ok((end, end < bytes.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the body ends when fed in two parts split at `at`.
    fn end(body: &[u8], at: usize) -> Result<Option<usize>, BadChunk> {
        let mut scanner = ChunkedEnd::default();
        let at = at.min(body.len());
        match scanner.scan(&body[..at])? {
            Some(n) => Ok(Some(n)),
            None => Ok(scanner.scan(&body[at..])?.map(|n| at + n)),
        }
    }

    #[test]
    fn the_end_is_found_across_reads_with_extensions_and_trailers() {
        let body = b"5\r\nhello\r\nA;name=v\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nGET /next";
        let last = body.len() - b"GET /next".len();
        for at in 0..=body.len() {
            assert_eq!(end(body, at), Ok(Some(last)), "split at {at}");
        }
        assert_eq!(end(b"0\r\n\r\n", 1), Ok(Some(5)));
        assert_eq!(end(b"3\r\nabc\r\n", 4), Ok(None));
    }

    /// The data and trailer bytes of `body` fed in two parts split at `at`, until its end.
    fn decode(body: &[u8], at: usize) -> Result<(Vec<u8>, Vec<u8>, usize), BadChunk> {
        let mut decoder = ChunkedEnd::default();
        let (mut data, mut trailers) = (Vec::new(), Vec::new());
        let at = at.min(body.len());
        for (offset, part) in [(0, &body[..at]), (at, &body[at..])] {
            let mut i = 0;
            while i < part.len() {
                let decoded = decoder.decode(&part[i..])?;
                data.extend_from_slice(&part[i..][decoded.data]);
                trailers.extend_from_slice(&part[i..][decoded.trailers]);
                i += decoded.taken;
                if decoded.done {
                    return Ok((data, trailers, offset + i));
                }
            }
        }
        Err(BadChunk)
    }

    #[test]
    fn decoding_takes_out_the_data_and_the_trailers_across_reads() {
        let body = b"5\r\nhello\r\nA;name=v\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nGET /next";
        let last = body.len() - b"GET /next".len();
        for at in 0..=body.len() {
            let (data, trailers, end) = decode(body, at).unwrap();
            assert_eq!(data, b"hello0123456789", "split at {at}");
            assert_eq!(trailers, b"X-Sum: 1\r\n\r\n", "split at {at}");
            assert_eq!(end, last, "split at {at}");
        }
        let (data, trailers, end) = decode(b"0\r\n\r\n", 2).unwrap();
        assert_eq!((data.len(), &trailers[..], end), (0, &b"\r\n"[..], 5));
        // A run of data ends a call, so that the reader can pass it on.
        let mut decoder = ChunkedEnd::default();
        let first = decoder.decode(b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n").unwrap();
        assert_eq!((first.taken, first.data, first.done), (5, 3..5, false));
    }

    #[test]
    fn broken_framing_is_refused() {
        for body in [
            &b"\r\n"[..],
            b"g\r\n",
            b"3\nabc\r\n",
            b"3\r\nabcd\r\n",
            b"0\r\nX: 1\n\r\n",
            b"1000000000000000\r\n",
        ] {
            assert_eq!(end(body, 2), Err(BadChunk), "{body:?}");
        }
    }

    #[test]
    fn remaining_counts_a_body_down_and_tells_what_came_after_it() {
        let mut length = Remaining::new(Framing::Length(5));
        assert_eq!(length.advance(b"abc"), Ok((3, false)));
        assert!(!length.done);
        assert_eq!(
            length.advance(b"deNEXT"),
            Ok((2, true)),
            "more than the body"
        );
        assert!(length.done);

        assert!(Remaining::new(Framing::Empty).done);
        assert!(Remaining::new(Framing::Length(0)).done);

        let mut chunked = Remaining::new(Framing::Chunked);
        assert_eq!(chunked.advance(b"3\r\nabc\r\n"), Ok((8, false)));
        assert!(!chunked.done);
        assert_eq!(chunked.advance(b"0\r\n\r\nX"), Ok((5, true)));
        assert!(chunked.done);
        assert_eq!(
            Remaining::new(Framing::Chunked).advance(b"zz\r\n"),
            Err(BadChunk)
        );

        let mut close = Remaining::new(Framing::Close);
        assert_eq!(close.advance(b"all of it"), Ok((9, false)));
        assert!(!close.done, "only the sender's close ends it");
    }
}
