internal import CLinuxShims

/// Process-wide allocator settings.
public enum HeapTuning {
    /// Request bodies and encoded output are a few hundred KiB each. By
    /// default glibc maps such blocks with fresh (zeroed) pages for every
    /// request and unmaps them after; keeping them in the heap for reuse
    /// saves that page-fault churn. The peak stays what the load needs.
    public static func keepLargeBlocksInHeap() {
        mallopt(M_MMAP_THRESHOLD, 32 << 20)
        mallopt(M_TRIM_THRESHOLD, 128 << 20)
    }

    /// Under a memory limit, resident size matters more than page faults:
    /// blocks of a MiB and more get their own mappings, returned to the
    /// kernel when freed, and free heap is trimmed sooner, so the process's
    /// size follows the bytes it holds.
    public static func followHeldBytes() {
        mallopt(M_MMAP_THRESHOLD, 1 << 20)
        mallopt(M_TRIM_THRESHOLD, 8 << 20)
    }
}
