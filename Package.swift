// swift-tools-version: 6.2
//
// One package for all of Curio. Every target compiles for the host (so `swift test`
// sees it); the modules that run inside Curio are also cross-built for
// riscv64-none-none-eabi with toolset-riscv64.json and linked by the Makefile,
// which owns the linker scripts.
import PackageDescription

let embeddedRestrictions: [SwiftSetting] = [
    .treatWarning("EmbeddedRestrictions", as: .error),
]

let package = Package(
    name: "Curio",
    products: [
        .executable(name: "mkimage", targets: ["mkimage"]),
        .executable(name: "curio-bench", targets: ["curio-bench"]),
        .executable(name: "curio-campaign", targets: ["curio-campaign"]),
        .executable(name: "curio-fuzz", targets: ["curio-fuzz"]),
        .executable(name: "curio-profile", targets: ["curio-profile"]),
    ],
    dependencies: [
        // Host tools only (the campaign's command line); nothing that runs inside Curio
        // depends on a package.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Types shared by the kernel and user space: syscall numbers, error codes, IDs.
        .target(name: "CurioABI", path: "Sources/ABI", swiftSettings: embeddedRestrictions),

        // The kernel: a portable, host-testable core; the hardware layer in C/assembly;
        // and the riscv64 kernel proper that binds the two together.
        .target(name: "KernelCore", dependencies: ["CurioABI"], path: "Sources/Kernel/Core",
                swiftSettings: embeddedRestrictions),
        .target(name: "KernelArch", path: "Sources/Kernel/Arch", exclude: ["kernel.ld"]),
        .target(name: "Kernel", dependencies: ["KernelCore", "KernelArch", "Freestanding"], path: "Sources/Kernel/Main",
                swiftSettings: embeddedRestrictions),

        // memcpy and friends, for the kernel and every program (neither has a libc).
        .target(name: "Freestanding", path: "Sources/Runtime/Freestanding"),

        // User space: the runtime every process links, then servers and programs.
        .target(name: "UserArch", path: "Sources/User/Arch", exclude: ["user.ld"]),
        .target(name: "CurioUser", dependencies: ["CurioABI", "UserArch", "Freestanding"], path: "Sources/User/Library",
                swiftSettings: embeddedRestrictions),
        // The console: typed-input queue, key decoder and line editor (host-tested), its
        // client API, and the server that owns the UART.
        .target(name: "ConsoleCore", path: "Sources/Servers/Console/Core", swiftSettings: embeddedRestrictions),
        .target(name: "ConsoleAPI", dependencies: ["CurioUser"], path: "Sources/Servers/Console/API",
                swiftSettings: embeddedRestrictions),
        .target(name: "ConsoleServer", dependencies: ["CurioUser", "ConsoleAPI", "ConsoleCore", "UserArch"],
                path: "Sources/Servers/Console/Server", swiftSettings: embeddedRestrictions),
        .target(name: "Shell", dependencies: ["CurioUser", "ConsoleAPI", "ConsoleCore", "UserArch", "FileSystemAPI",
                                              "ConfigAPI", "TimerAPI", "NetworkAPI"],
                path: "Sources/Programs/Shell",
                swiftSettings: embeddedRestrictions),
        .target(name: "Crashme", dependencies: ["CurioUser", "ConsoleAPI", "UserArch"], path: "Sources/Programs/Crashme",
                swiftSettings: embeddedRestrictions),
        .target(name: "DMAProbe", dependencies: ["CurioUser", "ConsoleAPI", "UserArch"],
                path: "Sources/Programs/DMAProbe", exclude: ["dma-probe-system.toml"],
                swiftSettings: embeddedRestrictions),

        // HTTP/1.1 for Curio's programs: request and response parsing, ranges, paths,
        // response heads and listings (host-tested, allocation-light, no dependencies).
        .target(name: "HTTPCore", path: "Sources/User/HTTP", swiftSettings: embeddedRestrictions),

        // Server state regions: the on-SSR format (host-tested, allocation-free) and the
        // runtime that turns a service into a restartable SSR server.
        .target(name: "SSRFormat", path: "Sources/User/SSR/Format", swiftSettings: embeddedRestrictions),
        .target(name: "SSRServer", dependencies: ["CurioUser", "SSRFormat", "UserArch"], path: "Sources/User/SSR/Server",
                swiftSettings: embeddedRestrictions),

        // The timer service: its protocol and per-client logic (host-tested), client API, server.
        .target(name: "TimerCore", dependencies: ["CurioABI", "SSRFormat"], path: "Sources/Servers/Timer/Core",
                swiftSettings: embeddedRestrictions),
        .target(name: "TimerAPI", dependencies: ["CurioUser", "TimerCore"], path: "Sources/Servers/Timer/API",
                swiftSettings: embeddedRestrictions),
        .target(name: "TimerService", dependencies: ["CurioUser", "TimerAPI", "TimerCore", "SSRServer", "SSRFormat"],
                path: "Sources/Servers/Timer/Service", swiftSettings: embeddedRestrictions),
        .target(name: "TimerServer", dependencies: ["TimerCore", "TimerService", "SSRServer"],
                path: "Sources/Servers/Timer/Server", swiftSettings: embeddedRestrictions),
        // The timer's next version (a live upgrade's demonstration): another SSR layout.
        .target(name: "TimerServerNext", dependencies: ["TimerCore", "TimerService", "SSRServer"],
                path: "Sources/Servers/Timer/Next", swiftSettings: embeddedRestrictions),
        .target(name: "TimerClient", dependencies: ["CurioUser", "ConsoleAPI", "TimerAPI", "UserArch"],
                path: "Sources/Programs/TimerClient", swiftSettings: embeddedRestrictions),
        .target(name: "TimerTest", dependencies: ["CurioUser", "ConsoleAPI", "UserArch"],
                path: "Sources/Programs/TimerTest", swiftSettings: embeddedRestrictions),

        // The configuration service: settings restarted servers reload (paper §3).
        .target(name: "ConfigAPI", dependencies: ["CurioUser"], path: "Sources/Servers/Config/API",
                swiftSettings: embeddedRestrictions),
        .target(name: "ConfigServer", dependencies: ["CurioUser", "ConfigAPI"], path: "Sources/Servers/Config/Server",
                swiftSettings: embeddedRestrictions),

        // virtio-mmio drivers' common ground: the transport's registers, the split
        // virtqueue and the checked list of DMA pages (host-tested through the drivers).
        .target(name: "Virtio", path: "Sources/User/Virtio", swiftSettings: embeddedRestrictions),

        // Block storage: the virtio-blk driver and request queue logic (host-tested), the
        // client API, and the restartable storage server.
        .target(name: "StorageCore", dependencies: ["Virtio"], path: "Sources/Servers/Storage/Core", swiftSettings: embeddedRestrictions),
        .target(name: "StorageServer", dependencies: ["CurioUser", "StorageCore", "SSRServer", "SSRFormat", "ConsoleAPI", "ConfigAPI", "UserArch", "Virtio"],
                path: "Sources/Servers/Storage/Server", swiftSettings: embeddedRestrictions),
        .target(name: "StorageAPI", dependencies: ["CurioUser", "StorageCore"], path: "Sources/Servers/Storage/API",
                swiftSettings: embeddedRestrictions),

        // The network service: the virtio-net driver, the packet layer (addresses,
        // checksums, frame parsing and building, the ARP cache), the wire protocol and the
        // per-client socket state (host-tested); the client API, the server, and programs.
        .target(name: "NetworkCore", dependencies: ["Virtio"], path: "Sources/Servers/Network/Core",
                swiftSettings: embeddedRestrictions),
        .target(name: "NetworkAPI", dependencies: ["CurioUser", "NetworkCore"], path: "Sources/Servers/Network/API",
                swiftSettings: embeddedRestrictions),
        .target(name: "NetworkServer",
                dependencies: ["CurioUser", "NetworkCore", "SSRServer", "SSRFormat", "UserArch", "Virtio", "ConfigAPI"],
                path: "Sources/Servers/Network/Server", swiftSettings: embeddedRestrictions),
        .target(name: "UDPEcho", dependencies: ["CurioUser", "ConsoleAPI", "NetworkAPI"], path: "Sources/Programs/UDPEcho",
                swiftSettings: embeddedRestrictions),
        .target(name: "TCPEcho", dependencies: ["CurioUser", "ConsoleAPI", "NetworkAPI"], path: "Sources/Programs/TCPEcho",
                swiftSettings: embeddedRestrictions),
        .target(name: "HTTPServer", dependencies: ["CurioUser", "ConsoleAPI", "NetworkAPI", "FileSystemAPI", "HTTPCore"],
                path: "Sources/Programs/HTTPServer", swiftSettings: embeddedRestrictions),
        .target(name: "NetworkBench", dependencies: ["CurioUser", "ConsoleAPI", "NetworkAPI", "UserArch"],
                path: "Sources/Programs/NetworkBench", swiftSettings: embeddedRestrictions),
        .target(name: "HTTPFetch", dependencies: ["CurioUser", "ConsoleAPI", "NetworkAPI", "FileSystemAPI", "HTTPCore"],
                path: "Sources/Programs/HTTPFetch", swiftSettings: embeddedRestrictions),
        .target(name: "NetTest", dependencies: ["CurioUser", "ConsoleAPI", "FileSystemAPI"],
                path: "Sources/Programs/NetTest", swiftSettings: embeddedRestrictions),

        // The filesystem: shared vocabulary, wire protocol and per-client state (host-tested),
        // the ext2 engine (host-tested against mke2fs/e2fsck), client API and server.
        .target(name: "FileSystemCore", path: "Sources/Servers/FileSystem/Core", swiftSettings: embeddedRestrictions),
        .target(name: "Ext2", dependencies: ["FileSystemCore"], path: "Sources/Servers/FileSystem/Ext2",
                swiftSettings: embeddedRestrictions),

        .target(name: "FileSystemAPI", dependencies: ["CurioUser", "FileSystemCore"], path: "Sources/Servers/FileSystem/API",
                swiftSettings: embeddedRestrictions),

        .target(name: "FileSystemService",
                dependencies: ["CurioUser", "FileSystemCore", "Ext2", "SSRServer", "SSRFormat", "StorageAPI", "ConfigAPI"],
                path: "Sources/Servers/FileSystem/Service", swiftSettings: embeddedRestrictions),
        .target(name: "FileSystemServer", dependencies: ["FileSystemService", "SSRServer"],
                path: "Sources/Servers/FileSystem/Server", swiftSettings: embeddedRestrictions),
        // The filesystem server's next version (a live upgrade's demonstration): another SSR layout.
        .target(name: "FileSystemServerNext", dependencies: ["FileSystemService", "SSRServer"],
                path: "Sources/Servers/FileSystem/Next", swiftSettings: embeddedRestrictions),
        .target(name: "FileCopy", dependencies: ["CurioUser", "ConsoleAPI", "FileSystemAPI", "UserArch"],
                path: "Sources/Programs/FileCopy", swiftSettings: embeddedRestrictions),
        .target(name: "TCPSave", dependencies: ["CurioUser", "ConsoleAPI", "FileSystemAPI", "NetworkAPI", "UserArch"],
                path: "Sources/Programs/TCPSave", swiftSettings: embeddedRestrictions),
        .target(name: "FileSystemTest", dependencies: ["CurioUser", "ConsoleAPI", "FileSystemAPI", "StorageAPI"],
                path: "Sources/Programs/FileSystemTest", swiftSettings: embeddedRestrictions),

        .target(name: "PingServer", dependencies: ["CurioUser"], path: "Sources/Programs/PingServer",
                swiftSettings: embeddedRestrictions),
        .target(name: "Bench", dependencies: ["CurioUser", "ConsoleAPI", "UserArch"], path: "Sources/Programs/Bench",
                swiftSettings: embeddedRestrictions),
        .target(name: "FileSystemBench", dependencies: ["CurioUser", "ConsoleAPI", "FileSystemAPI", "UserArch"],
                path: "Sources/Programs/FileSystemBench", swiftSettings: embeddedRestrictions),

        .target(name: "Binder", dependencies: ["CurioUser"], path: "Sources/Programs/Binder",
                swiftSettings: embeddedRestrictions),
        .target(name: "SyscallFuzzer", dependencies: ["CurioUser", "ConsoleAPI", "UserArch"],
                path: "Sources/Programs/SyscallFuzzer", swiftSettings: embeddedRestrictions),
        .target(name: "RogueServer", dependencies: ["CurioUser", "TimerAPI", "UserArch"], path: "Sources/Programs/RogueServer",
                swiftSettings: embeddedRestrictions),

        // Host tools: the system description and the boot-image packer.
        .target(name: "SystemImage", dependencies: ["KernelCore", "CurioABI"], path: "Sources/Tools/SystemImage"),
        .executableTarget(name: "mkimage",
                          dependencies: ["SystemImage", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/Tools/mkimage"),
        .executableTarget(name: "curio-bench", dependencies: ["ProfileKit"], path: "Sources/Tools/Bench"),
        // The fault-injection campaign: plan, judgement, CSV and report (host-tested), and
        // its command line.
        .target(name: "CampaignKit", dependencies: ["CurioABI"], path: "Sources/Tools/CampaignKit"),
        .executableTarget(name: "curio-campaign",
                          dependencies: ["CampaignKit", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/Tools/Campaign"),
        .executableTarget(name: "curio-fuzz", path: "Sources/Tools/Fuzz"),
        // Where the instructions go: the profile's parsing and attribution (host-tested),
        // and its command line.
        .target(name: "ProfileKit", path: "Sources/Tools/ProfileKit"),
        .executableTarget(name: "curio-profile",
                          dependencies: ["ProfileKit", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/Tools/Profile"),

        .testTarget(name: "FreestandingTests", dependencies: ["Freestanding"]),
        .testTarget(name: "KernelCoreTests", dependencies: ["KernelCore"]),
        .testTarget(name: "SystemImageTests", dependencies: ["SystemImage"]),
        .testTarget(name: "IntegrationTests", dependencies: ["SystemImage", "CampaignKit"]),
        .testTarget(name: "CampaignTests", dependencies: ["CampaignKit"]),
        .testTarget(name: "ProfileKitTests", dependencies: ["ProfileKit"]),
        .testTarget(name: "SSRFormatTests", dependencies: ["SSRFormat"]),
        .testTarget(name: "SSRServerTests", dependencies: ["SSRServer", "SSRFormat", "CurioUser"]),
        // The SSR layouts of the servers' two versions (live upgrade).
        .testTarget(name: "SSRLayoutTests", dependencies: ["SSRFormat", "TimerCore", "FileSystemService",
                                                           "FileSystemCore", "Ext2"]),
        .testTarget(name: "TimerCoreTests", dependencies: ["TimerCore", "SSRFormat", "CurioABI"]),
        .testTarget(name: "StorageCoreTests", dependencies: ["StorageCore", "Virtio"]),
        .testTarget(name: "FileSystemCoreTests", dependencies: ["FileSystemCore", "SSRFormat"]),
        .testTarget(name: "Ext2Tests", dependencies: ["Ext2", "FileSystemCore"]),
        .testTarget(name: "ConsoleCoreTests", dependencies: ["ConsoleCore"]),
        .testTarget(name: "NetworkCoreTests", dependencies: ["NetworkCore", "Virtio", "SSRFormat"]),
        .testTarget(name: "HTTPCoreTests", dependencies: ["HTTPCore"]),
    ]
)
