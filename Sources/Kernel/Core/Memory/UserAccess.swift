// Validated access to user memory, for system calls.
//
// A system call names user memory by virtual address and length, and the process
// chooses both. The kernel never dereferences those addresses: user pages need not
// be mapped in whatever tables are live, a bad address would fault inside the kernel,
// and with SUM clear the hardware forbids it anyway. Instead the kernel walks the
// process's page tables itself and copies through the physical frames, which RAM's
// identity mapping (or the test fake) makes reachable.
//
// Every access happens in two passes. The first checks every page of the range:
// the whole range lies below 0x40_0000_0000 (the low, user half of Sv39) without
// wrapping, and each page is a 4 KiB leaf with V, U and R set (and W when the kernel
// will write). Only then does the second pass copy, one page-sized chunk at a time,
// since consecutive virtual pages are rarely consecutive frames. A bad range is thus
// refused with nothing copied: a failed `copyOut` leaves the process's memory exactly
// as it was, and a syscall that fails has no effect.
//
// A leaf must be a 4 KiB page because only `map` builds user mappings and it only
// builds those; a megapage or gigapage with U set would be a kernel bug. A leaf
// reached through a root entry borrowed from the kernel is refused as well, so the
// kernel's own pages (which have U clear anyway) are doubly out of reach.
//
// Validation and copy are two walks over the same tables, which is sound because the
// kernel does not change a process's tables while it is inside one of its syscalls.
// A zero-length access touches nothing and always succeeds.

public enum UserAccessError: Error, Equatable, Sendable {
    /// Some byte of the range is not mapped for user access of the kind asked for.
    case badAddress
}

extension AddressSpace {
    /// The first address above user space: the top of the low half of Sv39.
    static let userLimit: UInt64 = 0x40_0000_0000

    /// Whether every byte of `va ..< va + count` is in a 4 KiB user page, readable,
    /// and writable too if `writable`; false if the range wraps or leaves user space.
    public func isUserAccessible<M: PhysicalMemory>(
        _ va: VirtualAddress, count: Int, writable: Bool, memory: M
    ) -> Bool {
        guard count > 0 else { return count == 0 }
        let (end, overflow) = va.rawValue.addingReportingOverflow(UInt64(count))
        guard !overflow, end <= Self.userLimit else { return false }
        var page = va.pageBase
        while page.rawValue < end {
            guard userFrame(of: page, writable: writable, memory: memory) != nil else { return false }
            page = page.advanced(by: pageSize)
        }
        return true
    }

    /// Copies `count` bytes of user memory at `va` into the kernel's `buffer`.
    public func copyIn<M: PhysicalMemory>(
        from va: VirtualAddress, count: Int, into buffer: UnsafeMutableRawPointer, memory: M
    ) throws(UserAccessError) {
        guard isUserAccessible(va, count: count, writable: false, memory: memory) else { throw .badAddress }
        var copied = 0
        while copied < count {
            let source = va.advanced(by: copied)
            let chunk = min(count - copied, pageSize - source.pageOffset)
            let frame = validatedUserFrame(of: source, writable: false, memory: memory)
            (buffer + copied).copyMemory(from: memory.pointer(to: frame), byteCount: chunk)
            copied += chunk
        }
    }

    /// Copies `count` bytes of the kernel's `buffer` to user memory at `va`.
    public func copyOut<M: PhysicalMemory>(
        from buffer: UnsafeRawPointer, count: Int, to va: VirtualAddress, memory: M
    ) throws(UserAccessError) {
        guard isUserAccessible(va, count: count, writable: true, memory: memory) else { throw .badAddress }
        var copied = 0
        while copied < count {
            let destination = va.advanced(by: copied)
            let chunk = min(count - copied, pageSize - destination.pageOffset)
            let frame = validatedUserFrame(of: destination, writable: true, memory: memory)
            memory.pointer(to: frame).copyMemory(from: buffer + copied, byteCount: chunk)
            copied += chunk
        }
    }

    /// Copies between two address spaces (IPC payloads): validates the source readable
    /// and the destination writable, then copies page-chunk by page-chunk. Each chunk
    /// ends where the source or the destination page ends, whichever comes first. If
    /// both ranges are in one space and overlap, the destination's contents are
    /// unspecified (but nothing outside it is written).
    public static func copy<M: PhysicalMemory>(
        from source: AddressSpace, _ sourceVA: VirtualAddress,
        to destination: AddressSpace, _ destinationVA: VirtualAddress,
        count: Int, memory: M
    ) throws(UserAccessError) {
        guard source.isUserAccessible(sourceVA, count: count, writable: false, memory: memory),
              destination.isUserAccessible(destinationVA, count: count, writable: true, memory: memory)
        else { throw .badAddress }
        var copied = 0
        while copied < count {
            let from = sourceVA.advanced(by: copied)
            let to = destinationVA.advanced(by: copied)
            // Nested two-argument mins: the three-argument `min` is variadic, and its
            // argument array would be allocated in unoptimised builds.
            let chunk = min(count - copied, min(pageSize - from.pageOffset, pageSize - to.pageOffset))
            let sourceFrame = source.validatedUserFrame(of: from, writable: false, memory: memory)
            let destinationFrame = destination.validatedUserFrame(of: to, writable: true, memory: memory)
            memory.pointer(to: destinationFrame)
                .copyMemory(from: memory.pointer(to: sourceFrame), byteCount: chunk)
            copied += chunk
        }
    }

    /// The physical address of user byte `va`, if its page is a 4 KiB leaf of this
    /// space (not the kernel's) with V, U, R (and W when `writable`) set.
    func userFrame<M: PhysicalMemory>(
        of va: VirtualAddress, writable: Bool, memory: M
    ) -> PhysicalAddress? {
        let stop = walk(va, memory: memory)
        let flags = stop.entry.flags
        guard stop.isPageLeaf, !stop.isBorrowed, flags.contains(.user), flags.contains(.read),
              !writable || flags.contains(.write) else { return nil }
        return stop.entry.frame.advanced(by: va.pageOffset)
    }

    /// The frame behind `va` if it is a writable 4 KiB page this space owns (not a
    /// device window, not a borrowed SSR page): what a driver may hand its devices.
    func ownedUserFrame<M: PhysicalMemory>(of va: VirtualAddress, memory: M) -> PhysicalAddress? {
        let stop = walk(va, memory: memory)
        guard stop.isPageLeaf, !stop.isBorrowed, stop.entry.flags.isSuperset(of: [.user, .read, .write, .owned])
        else { return nil }
        return stop.entry.frame.advanced(by: va.pageOffset)
    }

    /// `userFrame` for an address the first pass already validated.
    private func validatedUserFrame<M: PhysicalMemory>(
        of va: VirtualAddress, writable: Bool, memory: M
    ) -> PhysicalAddress {
        guard let frame = userFrame(of: va, writable: writable, memory: memory) else {
            preconditionFailure("AddressSpace: user page vanished between validation and copy")
        }
        return frame
    }
}
