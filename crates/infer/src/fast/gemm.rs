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
/// shared by parallel tasks that write disjoint rectangles of it.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    ptr: *mut f32,
    len: usize,
}

// Tasks hold `Out` across threads; each writes only its own rectangle
// (the callers in conv.rs partition rows and columns without overlap).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    pub fn new(data: &mut [f32]) -> Out {
        Out {
            ptr: data.as_mut_ptr(),
            len: data.len(),
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
        // In bounds by the check in `Out::rows`; exclusive by its contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.stride), self.cols) }
    }

    /// `self = lhs * rhs` where lhs is `rows x k` and rhs `k x cols`.
    pub fn assign_product(&mut self, lhs: View, rhs: View, k: usize) {
        let (m, n) = (self.rows, self.cols);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            (0..m).for_each(|r| self.row(r).fill(0.0));
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
        // SAFETY: every element read or written lies inside the slices
        // checked above (row-major, unit column stride); `self` is exclusive.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                self.ptr,
                1,
                self.stride as isize,
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
    }
}
