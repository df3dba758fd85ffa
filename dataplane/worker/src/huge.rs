//! Per-worker memory on transparent huge pages.
//!
//! The io_uring backend's provided buffers (8 MB by default) are handed out by the ring in
//! turn, so on 4 KB pages nearly every datagram lands on a page the TLB no longer holds,
//! and those 2,048 pages crowd the calls' own state out of it. On 2 MB pages they take
//! four entries (docs/PERFORMANCE.md, "Huge pages for the provided buffers").
//!
//! [`HugeSlice`] allocates a table aligned to a huge page and advises it for transparent
//! huge pages (`MADV_HUGEPAGE`) before its first touch. The kernel honours that when its
//! THP mode is `always` or `madvise` (the common default); otherwise this is ordinary
//! memory and nothing else changes.

use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

use crate::types::DataplaneError;

/// Transparent huge page size with 4 KB base pages (x86-64, arm64).
const HUGE_PAGE: usize = 2 << 20;

/// A fixed-length table on huge-page-aligned, huge-page-advised memory.
pub(crate) struct HugeSlice<T> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: a `HugeSlice<T>` owns its elements as a `Box<[T]>` would; moving it to another
// thread moves them.
unsafe impl<T: Send> Send for HugeSlice<T> {}
// SAFETY: shared access only hands out `&[T]`, as `Box<[T]>` does.
unsafe impl<T: Sync> Sync for HugeSlice<T> {}

impl<T> HugeSlice<T> {
    /// A table of `len` elements, element `i` being `f(i)`.
    pub(crate) fn from_fn(
        len: usize,
        mut f: impl FnMut(usize) -> T,
    ) -> Result<HugeSlice<T>, DataplaneError> {
        let layout = Layout::array::<T>(len.max(1))
            .and_then(|l| l.align_to(HUGE_PAGE))
            .map(|l| l.pad_to_align())
            .map_err(|_| DataplaneError::Config("table too large"))?;
        // SAFETY: the layout has a non-zero size (at least one huge page).
        let raw = unsafe { alloc(layout) };
        let ptr = NonNull::new(raw.cast::<T>())
            .ok_or(DataplaneError::Config("table allocation failed"))?;
        // SAFETY: `raw` starts a huge-page-aligned allocation of `layout.size()` bytes that
        // nothing else uses yet; the advice changes how it is paged in, not its contents.
        // It comes before the first write, so the writes below fault in huge pages.
        let _ = unsafe { libc::madvise(raw.cast(), layout.size(), libc::MADV_HUGEPAGE) };
        for i in 0..len {
            // SAFETY: `i < len`, and the allocation holds `len` elements of `T` at `T`'s
            // alignment (a huge page is a multiple of it); each slot is written once.
            unsafe { ptr.as_ptr().add(i).write(f(i)) };
        }
        Ok(HugeSlice { ptr, len, layout })
    }
}

impl<T> std::ops::Deref for HugeSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised elements owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for HugeSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        // SAFETY: the `len` elements were initialised in `from_fn` and are dropped once,
        // then the memory is freed with the layout it was allocated with.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
            dealloc(self.ptr.as_ptr().cast(), self.layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HugeSlice;
    use std::rc::Rc;

    #[test]
    fn holds_its_elements_and_drops_each_once() {
        let marker = Rc::new(());
        let t = HugeSlice::from_fn(1000, |i| (i, Rc::clone(&marker))).unwrap();
        assert_eq!(t.len(), 1000);
        assert!(t.iter().enumerate().all(|(i, (v, _))| *v == i));
        assert_eq!(t.as_ptr() as usize % (2 << 20), 0, "huge-page aligned");
        assert_eq!(Rc::strong_count(&marker), 1001);
        drop(t);
        assert_eq!(Rc::strong_count(&marker), 1);
    }

    /// The buffers really are on huge pages: the kernel's own account of the mapping
    /// (`/proc/self/smaps`) shows them. Needs THP mode `always` or `madvise` (Debian's
    /// default; `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled`).
    #[test]
    fn the_kernel_backs_a_table_with_huge_pages() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .expect("this kernel has no transparent huge pages");
        assert!(
            mode.contains("[always]") || mode.contains("[madvise]"),
            "transparent huge pages are off ({}): set madvise to run this test",
            mode.trim()
        );
        let t = HugeSlice::<u8>::from_fn(4 << 20, |_| 0).unwrap();
        let at = t.as_ptr() as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut huge_kb = None;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = lo <= at && at < hi;
                    continue;
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("AnonHugePages:") {
                    huge_kb = v.trim().trim_end_matches("kB").trim().parse::<usize>().ok();
                }
            }
        }
        let huge_kb = huge_kb.expect("the table's mapping in /proc/self/smaps");
        assert!(huge_kb >= 4096, "4 MB table, {huge_kb} kB on huge pages");
    }

    #[test]
    fn an_empty_table_is_valid() {
        let t: HugeSlice<u64> = HugeSlice::from_fn(0, |_| 0).unwrap();
        assert!(t.is_empty());
    }
}
