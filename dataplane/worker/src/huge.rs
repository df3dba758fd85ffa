//! Per-worker memory on transparent huge pages.
//!
//! The io_uring backend's provided buffers (8 MB by default) are handed out by the ring in
//! turn, so on 4 KB pages nearly every datagram lands on a page the TLB no longer holds,
//! and those 2,048 pages crowd the calls' own state out of it. On 2 MB pages they take
//! four entries (docs/PERFORMANCE.md, "Huge pages for the provided buffers").
//!
//! [`zeroed`] maps the memory anonymously and advises it for transparent huge pages
//! (`MADV_HUGEPAGE`) before its first touch. The kernel honours that when its THP mode is
//! `always` or `madvise` (the common default), and places an anonymous mapping whose size
//! is a multiple of 2 MB on a 2 MB boundary (Linux 6.7 and later), so every page of it can
//! be huge. Otherwise this is ordinary memory and nothing else changes.

use memmap2::{Advice, MmapMut};

use crate::types::DataplaneError;

/// `len` zeroed bytes, advised for transparent huge pages.
pub(crate) fn zeroed(len: usize) -> Result<MmapMut, DataplaneError> {
    let map = MmapMut::map_anon(len.max(1)).map_err(|e| DataplaneError::io("mmap buffers", e))?;
    // Only advice: where the kernel has no THP the memory is the same, on small pages.
    let _ = map.advise(Advice::HugePage);
    Ok(map)
}

#[cfg(test)]
mod tests {
    /// The buffers really are on huge pages: the kernel's own account of the mapping
    /// (`/proc/self/smaps`) shows them. Needs THP mode `always` or `madvise` (Debian's
    /// default; `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled`).
    #[test]
    fn the_kernel_backs_the_buffers_with_huge_pages() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .expect("this kernel has no transparent huge pages");
        assert!(
            mode.contains("[always]") || mode.contains("[madvise]"),
            "transparent huge pages are off ({}): set madvise to run this test",
            mode.trim()
        );
        let mut t = super::zeroed(4 << 20).unwrap();
        assert!(t.iter().all(|&b| b == 0));
        t.fill(1); // first touch: faults the pages in
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
        let huge_kb = huge_kb.expect("the buffers' mapping in /proc/self/smaps");
        assert!(
            huge_kb >= 4096,
            "4 MB of buffers, {huge_kb} kB on huge pages"
        );
    }
}
