//! Feature-map buffers kept between operations and between forward passes.
//!
//! A fresh buffer costs a page fault per 4 KiB on first touch: ResNet-50
//! at batch 8 allocates about 250 MB of maps a pass, which was 12 % of its
//! time. Buffers are handed back when dropped and the next request of the
//! same size or smaller reuses one. What is kept is capped, so one large
//! batch does not leave the daemon holding its peak memory for good.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Floats kept for reuse at most (128 MiB): all of DenseNet-121's and
/// ResNet-50's maps at 224² and batch 1, most of ResNet-50's at 512².
const KEEP_FLOATS: usize = 32 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct Buffers {
    free: Mutex<Vec<Vec<f32>>>,
}

impl Buffers {
    /// A buffer of `len` floats with unspecified contents: every user
    /// writes each element before reading it.
    pub fn take(&self, len: usize) -> Buf<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.len() >= len)
            .min_by_key(|(_, v)| v.len())
            .map(|(i, _)| i);
        let data = match best {
            Some(i) => free.swap_remove(i),
            None => vec![0.0; len],
        };
        Buf {
            data,
            len,
            home: self,
        }
    }

    fn give(&self, data: Vec<f32>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.push(data);
        // Oldest first out, until what is kept fits.
        while free.iter().map(Vec::len).sum::<usize>() > KEEP_FLOATS {
            free.remove(0);
        }
    }
}

/// A buffer on loan from [`Buffers`], returned when dropped.
pub(crate) struct Buf<'a> {
    data: Vec<f32>,
    len: usize,
    home: &'a Buffers,
}

impl Deref for Buf<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data[..self.len]
    }
}

impl DerefMut for Buf<'_> {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.data[..self.len]
    }
}

impl Drop for Buf<'_> {
    fn drop(&mut self) {
        self.home.give(std::mem::take(&mut self.data));
    }
}
