// Drivers and their devices: register windows, DMA grants, register writes, and
// stopping a driver's devices when it goes.
//
// A program's device ranges come from the boot image (system.toml `devices`) and are
// mapped at fixed windows from `deviceWindow` on, 1 MiB apart. A 4 KiB page of a range
// that answers with the virtio magic value is a DMA-capable device: it is mapped
// read-only, and the driver writes it through `deviceWrite`, which DMAGuard.swift
// checks. Any other page (the UART's) cannot reach memory and is mapped read-write.

import CurioABI

extension Kernel {
    /// Whether the 4 KiB register page at `base` belongs to a virtio device (probed only
    /// where the platform says virtio devices may sit).
    func isVirtioDevice(at base: UInt64) -> Bool {
        platform.virtioRange.contains(base)
            && platform.readDeviceRegister(base + UInt64(VirtioRegister.magic)) == VirtioRegister.magicValue
    }

    /// `physicalAddress`: the physical address of the caller's own writable page at
    /// `address`, which from now on its devices may reach.
    mutating func grantDMA(at address: VirtualAddress, to slot: Int) throws(SyscallError) -> PhysicalAddress {
        guard tasks[slot].hardware.deviceCount > 0 else { throw .notPermitted }
        guard let space = tasks[slot].addressSpace,
              let physical = space.ownedUserFrame(of: address, memory: platform.memory) else { throw .badAddress }
        guard dma.pointee.grant(physical.rawValue & ~UInt64(pageSize - 1), to: slot) else { throw .outOfMemory }
        return physical
    }

    /// `deviceWrite`: writes `value` to register `offset` of the caller's device
    /// window `window`, if DMAGuard admits it.
    mutating func writeDevice(window: Int, offset: UInt64, value: UInt32, by slot: Int) throws(SyscallError) {
        guard window < tasks[slot].hardware.deviceCount else { throw .notPermitted }
        let device = tasks[slot].hardware.device(window)
        guard offset < device.size else { throw .badArgument }
        let address = device.base + offset
        let page = address & ~(VirtioRegister.pageBytes - 1)
        guard isVirtioDevice(at: page) else { throw .notPermitted }
        do {
            try dma.pointee.admit(value, to: Int(address - page), ofDeviceAt: page, by: slot, memory: platform.memory)
        } catch {
            switch error {
            case .outsideGrants: throw .dmaNotPermitted
            case .notPermitted: throw .notPermitted
            case .badValue: throw .badArgument
            }
        }
        platform.writeDeviceRegister(address, value)
    }

    /// A driver is gone (ended, or about to restart): each virtio device it drove is
    /// reset (virtio 1.x §4.2.2: Status 0), so that it stops using the rings and buffers
    /// it was given, before the frames go back to the allocator; then its grants and
    /// register shadows are forgotten. There is no IOMMU to do this for us.
    mutating func quiesceDevices(of slot: Int) {
        let hardware = tasks[slot].hardware
        for index in 0..<hardware.deviceCount {
            let device = hardware.device(index)
            var page = device.base
            while page < device.base &+ device.size {
                if isVirtioDevice(at: page) { reset(deviceAt: page) }
                page &+= VirtioRegister.pageBytes
            }
        }
        dma.pointee.revoke(slot)
    }

    /// Writes 0 to Status and waits (boundedly) until the device reads back 0, which
    /// it does once the reset is complete.
    private mutating func reset(deviceAt page: UInt64) {
        let status = page + UInt64(VirtioRegister.status)
        platform.writeDeviceRegister(status, 0)
        var polls = 0
        while platform.readDeviceRegister(status) != 0 && polls < 1_000 { polls += 1 }
    }

    /// Maps the pages of one device range at window `window`: read-only for a virtio
    /// device (its writes go through `deviceWrite`), read-write otherwise.
    mutating func mapDevice(_ device: (base: UInt64, size: UInt64), window: Int,
                            in slot: Int) throws(SyscallError) {
        let windowBase = VirtualAddress(Self.deviceWindow + UInt64(window) * Self.deviceWindowStride)
        let pages = Int((device.size + UInt64(pageSize) - 1) / UInt64(pageSize))
        for page in 0..<pages {
            let physical = PhysicalAddress(device.base).advanced(by: page * pageSize)
            let flags: PageFlags = isVirtioDevice(at: physical.rawValue) ? [.read, .user] : [.read, .write, .user]
            try map(windowBase.advanced(by: page * pageSize), to: physical, flags: flags, in: slot)
        }
    }

    /// The distance between two device windows in a driver's space.
    static var deviceWindowStride: UInt64 { 0x10_0000 }
}
