//! Buffers kept for the next request on the same thread, as HAProxy keeps its buffer pools: a
//! request (or a TCP flow with bytes to move) borrows two or three while it moves and an idle
//! connection holds none, so taking them from malloc each time would be a fifth of the
//! relay's work.

use std::cell::RefCell;

/// The capacity of a buffer: a large head, or a good piece of a body.
pub(crate) const SIZE: usize = 16 * 1024;
/// Spare buffers kept per thread: about the requests in flight at once on it.
const KEPT: usize = 256;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer of at least [`SIZE`] bytes.
pub(crate) fn take() -> Vec<u8> {
    SPARE
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(SIZE))
}

/// Gives a buffer back; one that grew past its size is freed instead.
pub(crate) fn give(mut buf: Vec<u8>) {
    if buf.capacity() < SIZE || buf.capacity() > 4 * SIZE {
        return;
    }
    buf.clear();
    // A buffer given back while the thread ends (a task dropped late) is freed instead.
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < KEPT {
            spare.push(buf);
        }
    });
}
