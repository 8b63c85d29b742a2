// A hostile block driver: it tries to make a virtio disk read into the kernel's code.
//
// It runs in a system of its own (dma-probe-system.toml, next to it: the
// console and this driver, which owns the virtio-mmio slots), because device ranges
// belong to one program and in Curio's system that is the storage server. It drives
// the disk by hand, as a driver does, and at each step where a driver decides where
// the device goes, it also tries to send it elsewhere:
//
//   grant      physicalAddress of its device window        -> badAddress
//   features   the packed ring, indirect descriptors        -> notPermitted
//   rings      a descriptor table in kernel memory         -> dmaNotPermitted
//   notify     a read of sector 2 into kernel code         -> dmaNotPermitted
//   mended     the same read into its own page             -> the ext2 magic arrives
//   too late   a checked chain, re-aimed at kernel code right after the notify:
//              the device has already taken the checked address (the kernel relies
//              on QEMU fetching descriptors during the notify: DMAGuard.swift)
//
// Each step prints one line "dmaprobe: STEP ok" or "dmaprobe: STEP FAILED ...";
// the machine powers off with 0 only if every step went as expected.

import ConsoleAPI
import CurioABI
import CurioUser
import UserArch

@main
struct DMAProbe {
    static let window: UInt = 0x7000_0000
    static let slotBytes = 0x1000
    static let kernelCode: UInt64 = 0x8020_0000

    static func main() {
        var probe = Probe()
        guard probe.findDisk() else {
            print("dmaprobe: no virtio block device")
            try? System.powerOff(code: 2)
            System.exit(2)
        }
        probe.run()
        print(probe.failures == 0 ? "dmaprobe: all attacks refused" : "dmaprobe: \(probe.failures) steps failed")
        try? System.powerOff(code: probe.failures == 0 ? 0 : 1)
        System.exit(1)
    }
}

struct Probe {
    // Register offsets (virtio 1.x §4.2.2).
    static let magic = 0x000, version = 0x004, deviceID = 0x008, deviceFeatures = 0x010
    static let deviceFeaturesSelect = 0x014, driverFeatures = 0x020, driverFeaturesSelect = 0x024
    static let queueSelect = 0x030, queueNumMax = 0x034, queueNum = 0x038, queueReady = 0x044
    static let queueNotify = 0x050, status = 0x070
    static let queueDescriptor = 0x080, queueDriver = 0x090, queueDevice = 0x0a0

    // The ring page: descriptors, available ring, used ring, request header, status byte.
    static let descriptors = 0x000, available = 0x100, used = 0x200, header = 0x800, statusByte = 0x900
    static let queueSize: UInt32 = 4

    var slot = 0
    var failures = 0
    let ring: UnsafeMutableRawPointer
    let data: UnsafeMutableRawPointer
    var ringPhysical: UInt64 = 0
    var dataPhysical: UInt64 = 0
    var published: UInt16 = 0

    init() {
        ring = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        data = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        ring.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
    }

    func read(_ offset: Int) -> UInt32 {
        let address = DMAProbe.window + UInt(slot * DMAProbe.slotBytes + offset)
        return curio_mmio_read32(UnsafeMutablePointer<UInt32>(bitPattern: address)!)
    }

    func write(_ offset: Int, _ value: UInt32) -> SyscallError? {
        do throws(SyscallError) {
            try System.writeDeviceRegister(range: 0, offset: slot * DMAProbe.slotBytes + offset, value: value)
            return nil
        } catch {
            return error
        }
    }

    func writeAddress(_ offset: Int, _ address: UInt64) -> SyscallError? {
        write(offset, UInt32(truncatingIfNeeded: address)) ?? write(offset + 4, UInt32(truncatingIfNeeded: address >> 32))
    }

    mutating func findDisk() -> Bool {
        for candidate in 0..<8 {
            slot = candidate
            if read(Self.magic) == 0x7472_6976 && read(Self.version) == 2 && read(Self.deviceID) == 2 { return true }
        }
        return false
    }

    mutating func expect(_ step: StaticString, _ outcome: SyscallError?, _ wanted: SyscallError?) {
        if outcome == wanted {
            print("dmaprobe: " + String(step) + " ok")
        } else {
            failures += 1
            print("dmaprobe: " + String(step) + " FAILED: got " + (outcome.map { String($0.name) } ?? "success"))
        }
    }

    mutating func run() {
        do throws(SyscallError) {
            ringPhysical = try System.physicalAddress(of: ring)
            dataPhysical = try System.physicalAddress(of: data)
        } catch {
            failures += 1
            print("dmaprobe: grant of its own pages FAILED")
            return
        }
        var windowGrant: SyscallError?
        do throws(SyscallError) {
            _ = try System.physicalAddress(of: UnsafeMutableRawPointer(bitPattern: DMAProbe.window)!)
        } catch {
            windowGrant = error
        }
        expect("grant of a device window", windowGrant, .badAddress)

        _ = write(Self.status, 0)
        _ = write(Self.status, 1 | 2)
        _ = write(Self.driverFeaturesSelect, 1)
        expect("packed ring feature", write(Self.driverFeatures, 1 << 2), .notPermitted)
        _ = write(Self.driverFeatures, 1)
        _ = write(Self.driverFeaturesSelect, 0)
        expect("indirect descriptor feature", write(Self.driverFeatures, 1 << 28), .notPermitted)
        _ = write(Self.driverFeatures, 0)
        _ = write(Self.status, 1 | 2 | 8)

        _ = write(Self.queueSelect, 0)
        guard read(Self.queueNumMax) >= Self.queueSize else {
            failures += 1
            print("dmaprobe: queue too small")
            return
        }
        _ = write(Self.queueNum, Self.queueSize)
        _ = writeAddress(Self.queueDescriptor, DMAProbe.kernelCode)
        _ = writeAddress(Self.queueDriver, ringPhysical + UInt64(Self.available))
        _ = writeAddress(Self.queueDevice, ringPhysical + UInt64(Self.used))
        expect("descriptor table in kernel memory", write(Self.queueReady, 1), .dmaNotPermitted)
        _ = writeAddress(Self.queueDescriptor, ringPhysical + UInt64(Self.descriptors))
        expect("rings in its own page", write(Self.queueReady, 1), nil)
        _ = write(Self.status, 1 | 2 | 8 | 4)

        describeRead(sector: 2, into: DMAProbe.kernelCode)
        publish()
        expect("read into kernel code", write(Self.queueNotify, 0), .dmaNotPermitted)

        describeRead(sector: 2, into: dataPhysical)
        expect("the same read into its own page", write(Self.queueNotify, 0), nil)
        let magicArrived = awaitCompletion() && data.load(fromByteOffset: 56, as: UInt16.self) == 0xEF53
        expect("ext2 magic read", magicArrived ? nil : .badArgument, nil)

        data.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        describeRead(sector: 2, into: dataPhysical)
        publish()
        let notified = write(Self.queueNotify, 0)
        describe(1, DMAProbe.kernelCode, 512, flags: 1 | 2, next: 2)
        curio_fence()
        let checkedAddressUsed = awaitCompletion() && data.load(fromByteOffset: 56, as: UInt16.self) == 0xEF53
        expect("chain re-aimed after its notify", notified ?? (checkedAddressUsed ? nil : .badArgument), nil)
    }

    /// Chain: header (device reads) -> 512 bytes at `target` (device writes) -> status.
    func describeRead(sector: UInt64, into target: UInt64) {
        ring.storeBytes(of: UInt32(0), toByteOffset: Self.header, as: UInt32.self)
        ring.storeBytes(of: UInt32(0), toByteOffset: Self.header + 4, as: UInt32.self)
        ring.storeBytes(of: sector, toByteOffset: Self.header + 8, as: UInt64.self)
        ring.storeBytes(of: UInt8(0xff), toByteOffset: Self.statusByte, as: UInt8.self)
        describe(0, ringPhysical + UInt64(Self.header), 16, flags: 1, next: 1)
        describe(1, target, 512, flags: 1 | 2, next: 2)
        describe(2, ringPhysical + UInt64(Self.statusByte), 1, flags: 2, next: 0)
        curio_fence()
    }

    func describe(_ index: Int, _ address: UInt64, _ length: UInt32, flags: UInt16, next: UInt16) {
        let entry = Self.descriptors + 16 * index
        ring.storeBytes(of: address, toByteOffset: entry, as: UInt64.self)
        ring.storeBytes(of: length, toByteOffset: entry + 8, as: UInt32.self)
        ring.storeBytes(of: flags, toByteOffset: entry + 12, as: UInt16.self)
        ring.storeBytes(of: next, toByteOffset: entry + 14, as: UInt16.self)
    }

    /// Makes chain 0 available once more.
    mutating func publish() {
        ring.storeBytes(of: UInt16(0), toByteOffset: Self.available + 4 + 2 * Int(UInt32(published) % Self.queueSize),
                        as: UInt16.self)
        published &+= 1
        curio_fence()
        ring.storeBytes(of: published, toByteOffset: Self.available + 2, as: UInt16.self)
        curio_fence()
    }

    /// Waits up to 5 s of the clock (a busy host completes disk reads slowly) for the
    /// used index to reach the available one; the request's status is 0.
    func awaitCompletion() -> Bool {
        let deadline = System.clock() + 50_000_000
        while System.clock() < deadline {
            curio_fence()
            if ring.load(fromByteOffset: Self.used + 2, as: UInt16.self) == published {
                let status = ring.load(fromByteOffset: Self.statusByte, as: UInt8.self)
                if status != 0 { print("dmaprobe: the device answered status \(status)") }
                return status == 0
            }
            System.yield()
        }
        print("dmaprobe: no completion within 5 s")
        return false
    }
}
