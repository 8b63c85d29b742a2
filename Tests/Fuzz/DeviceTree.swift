// Fuzz target `device-tree`: the kernel's reader of the firmware's device tree.
//
// The input is a flattened device tree; the seeds are the blobs QEMU's `virt`
// machine hands the kernel (`-machine virt,dumpdtb=...`, with and without
// `-append`). Both constructors run: the buffer one on the input as it is, and the
// pointer one — which learns the blob's length from the blob — on the input placed
// at the start of a zeroed 1 MiB area, as firmware memory would be. Whatever they
// answer must point inside the bytes they were given.

import KernelCore

nonisolated(unsafe) let firmwareMemory = UnsafeMutableRawBufferPointer.allocate(
    byteCount: DeviceTree.maxSize + 64, alignment: 8)
nonisolated(unsafe) var firmwareBytesUsed = firmwareMemory.count

func checkInside(_ tree: DeviceTree, _ base: UnsafeRawPointer, _ count: Int) {
    if let arguments = tree.bootArguments, arguments.count > 0 {
        let start = arguments.baseAddress! - base
        precondition(start >= 0 && start + arguments.count <= count, "bootargs point outside the blob")
        _ = arguments.reduce(0, &+)
    }
    _ = tree.memory
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeviceTree(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    if let tree = try? DeviceTree(input) { checkInside(tree, UnsafeRawPointer(data), size) }

    UnsafeMutableRawBufferPointer(rebasing: firmwareMemory[0..<firmwareBytesUsed]).initializeMemory(
        as: UInt8.self, repeating: 0)
    firmwareBytesUsed = min(size, firmwareMemory.count)
    UnsafeMutableRawBufferPointer(rebasing: firmwareMemory[0..<firmwareBytesUsed])
        .copyMemory(from: UnsafeRawBufferPointer(rebasing: input[0..<firmwareBytesUsed]))
    if let tree = try? DeviceTree(UnsafeRawPointer(firmwareMemory.baseAddress!)) {
        checkInside(tree, UnsafeRawPointer(firmwareMemory.baseAddress!), DeviceTree.maxSize)
    }
    return 0
}
