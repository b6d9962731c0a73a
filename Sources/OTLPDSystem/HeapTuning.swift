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
}
