//! The one place that calls the `gemm` crate (raw pointers): a row-major
//! `dst[m x n] = lhs[m x k] * rhs[k x n]` whose every index is checked
//! against its slice first, so the rest of the fast path stays safe code.

/// A row-major matrix view: `rows x cols` elements, row `r` starting at
/// `r * stride`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

/// Where a task writes: a pointer to the output buffer and its length,
/// shared by parallel tasks that write disjoint rectangles of it. It
/// borrows the buffer mutably for `'a`, so the buffer outlives it and
/// nothing else touches the buffer meanwhile.
#[derive(Clone, Copy)]
pub(crate) struct Out<'a> {
    ptr: *mut f32,
    len: usize,
    _buffer: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: tasks hold `Out` across threads; each writes only its own
// rectangle (the callers in conv.rs partition rows and columns without
// overlap), and the buffer is borrowed exclusively for the Out's life.
unsafe impl Send for Out<'_> {}
// SAFETY: as for Send: shared references only lead to disjoint writes.
unsafe impl Sync for Out<'_> {}

impl<'a> Out<'a> {
    pub fn new(data: &'a mut [f32]) -> Out<'a> {
        Out {
            ptr: data.as_mut_ptr(),
            len: data.len(),
            _buffer: std::marker::PhantomData,
        }
    }

    /// The rectangle `rows x cols` at `offset` with row `stride`, as
    /// mutable row slices.
    ///
    /// # Safety
    /// No other live reference may overlap this rectangle: tasks must
    /// write disjoint rectangles.
    pub unsafe fn rows(&self, offset: usize, rows: usize, cols: usize, stride: usize) -> Rows {
        if rows > 0 && cols > 0 {
            assert!(
                offset + (rows - 1) * stride + cols <= self.len,
                "output rectangle out of bounds"
            );
        }
        Rows {
            ptr: self.ptr.add(offset.min(self.len)),
            rows,
            cols,
            stride,
        }
    }
}

/// A bounds-checked rectangle of the output.
pub(crate) struct Rows {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    stride: usize,
}

impl Rows {
    /// Row `r`, `cols` long.
    pub fn row(&mut self, r: usize) -> &mut [f32] {
        assert!(r < self.rows);
        // SAFETY: in bounds by the check in `Out::rows`; exclusive by its
        // contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.stride), self.cols) }
    }

    /// `self = lhs * rhs` where lhs is `rows x k` and rhs `k x cols`.
    pub fn assign_product(&mut self, lhs: View, rhs: View, k: usize) {
        if self.rows == 0 || self.cols == 0 {
            return;
        }
        // SAFETY: `Out::rows` checked the rectangle; it is exclusive.
        unsafe { product(self.ptr, self.stride, self.rows, self.cols, lhs, rhs, k) }
    }
}

/// `dst = lhs * rhs` into a buffer of its own: `m x n`, row-major.
pub(crate) fn multiply(dst: &mut [f32], m: usize, n: usize, lhs: View, rhs: View, k: usize) {
    assert!(dst.len() >= m * n, "product out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `dst` is borrowed exclusively and holds `m x n` values.
    unsafe { product(dst.as_mut_ptr(), n, m, n, lhs, rhs, k) }
}

/// `dst = lhs * rhs`, `m x n` by `k`.
///
/// # Safety
/// `dst` must be valid for writes of `m x n` at row `stride`, and not
/// aliased. `lhs` and `rhs` are checked here.
unsafe fn product(
    dst: *mut f32,
    stride: usize,
    m: usize,
    n: usize,
    lhs: View,
    rhs: View,
    k: usize,
) {
    if k == 0 {
        for r in 0..m {
            std::slice::from_raw_parts_mut(dst.add(r * stride), n).fill(0.0);
        }
        return;
    }
    assert!(
        (m - 1) * lhs.stride + k <= lhs.data.len(),
        "lhs out of bounds"
    );
    assert!(
        (k - 1) * rhs.stride + n <= rhs.data.len(),
        "rhs out of bounds"
    );
    // Every element read lies inside the slices checked above (row-major,
    // unit column stride).
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        stride as isize,
        false,
        lhs.data.as_ptr(),
        1,
        lhs.stride as isize,
        rhs.data.as_ptr(),
        1,
        rhs.stride as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}
