#!/usr/bin/env python3
# One-off generator for tests/data/two_socket_4gpu_2nic.xml (hwloc 2.x XML schema).
# Run: python3 tests/unit/node_topology/gen_fixture.py > tests/data/two_socket_4gpu_2nic.xml
gp = [100]
def g():
    gp[0] += 1
    return gp[0]
def mask(bits):
    v = 0
    for b in bits: v |= 1 << b
    return "0x%08x" % v
out = []
def w(depth, s): out.append("  " * depth + s)

def pci(depth, busid, cls, ven, dev, pname, vname, osdevs):
    w(depth, f'<object type="PCIDev" gp_index="{g()}" pci_busid="{busid}" pci_type="{cls} [{ven}:{dev}] [{ven}:0000] a1" pci_link_speed="31.507692">')
    w(depth + 1, f'<info name="PCIVendor" value="{vname}"/>')
    w(depth + 1, f'<info name="PCIDevice" value="{pname}"/>')
    for name, t in osdevs:
        w(depth + 1, f'<object type="OSDev" gp_index="{g()}" name="{name}" osdev_type="{t}"/>')
    w(depth, '</object>')

def bridge(depth, busid, sec, sub, dev, pci_depth):
    w(depth, f'<object type="Bridge" gp_index="{g()}" bridge_type="1-1" depth="{pci_depth}" bridge_pci="0000:[{sec}-{sub}]" pci_busid="{busid}" pci_type="0604 [10b5:{dev}] [0000:0000] b0" pci_link_speed="31.507692">')

GPU = ("0302", "10de", "2330", "GH100 [H100 SXM5 80GB]", "NVIDIA Corporation")
def gpu(depth, busid):
    pci(depth, busid, GPU[0], GPU[1], GPU[2], GPU[3], GPU[4], [])
def nic(depth, busid, osdevs):
    pci(depth, busid, "0207", "15b3", "101b", "MT28908 Family [ConnectX-6]", "Mellanox Technologies", osdevs)

w(0, '<?xml version="1.0" encoding="UTF-8"?>')
w(0, '<!DOCTYPE topology SYSTEM "hwloc2.dtd">')
w(0, '<topology version="2.0">')
allpu = list(range(16))
w(1, f'<object type="Machine" os_index="0" cpuset="{mask(allpu)}" complete_cpuset="{mask(allpu)}" allowed_cpuset="{mask(allpu)}" nodeset="0x00000003" complete_nodeset="0x00000003" allowed_nodeset="0x00000003" gp_index="1">')
w(2, '<info name="HostName" value="fixture-2s4g"/>')
w(2, '<info name="Architecture" value="x86_64"/>')
# Per socket: 4 cores x 2 PUs, one NUMA node (32 GiB), and two host bridges:
#  - host bridge A with a PCIe switch holding GPU a and the NIC (GPU and NIC share a switch),
#  - host bridge B with a root port holding GPU b alone (its NIC is reached via the package).
layout = [
    dict(hb=("17", "1a"), hb2=("3a", "3b"), sw=("0000:17:00.0", "18", "1a"), pa=("0000:18:00.0", "19"), ga="0000:19:00.0",
         pn=("0000:18:01.0", "1a"), nc="0000:1a:00.0", rp=("0000:3a:00.0", "3b"), gb="0000:3b:00.0",
         osd=[("ib0", 2), ("mlx5_0", 3)]),
    dict(hb=("86", "89"), hb2=("ae", "af"), sw=("0000:86:00.0", "87", "89"), pa=("0000:87:00.0", "88"), ga="0000:88:00.0",
         pn=("0000:87:01.0", "89"), nc="0000:89:00.0", rp=("0000:ae:00.0", "af"), gb="0000:af:00.0",
         osd=[("ib1", 2), ("mlx5_1", 3)]),
]
for p in range(2):
    L = layout[p]
    pus = list(range(8 * p, 8 * p + 8))
    ns = "0x%08x" % (1 << p)
    cs = mask(pus)
    w(2, f'<object type="Package" os_index="{p}" cpuset="{cs}" complete_cpuset="{cs}" nodeset="{ns}" complete_nodeset="{ns}" gp_index="{g()}">')
    w(3, '<info name="CPUModel" value="Fixture Xeon"/>')
    w(3, f'<object type="NUMANode" os_index="{p}" cpuset="{cs}" complete_cpuset="{cs}" nodeset="{ns}" complete_nodeset="{ns}" gp_index="{g()}" local_memory="34359738368"/>')
    for c in range(4):
        core_pus = pus[2 * c: 2 * c + 2]
        ccs = mask(core_pus)
        w(3, f'<object type="Core" os_index="{c}" cpuset="{ccs}" complete_cpuset="{ccs}" nodeset="{ns}" complete_nodeset="{ns}" gp_index="{g()}">')
        for pu in core_pus:
            pcs = mask([pu])
            w(4, f'<object type="PU" os_index="{pu}" cpuset="{pcs}" complete_cpuset="{pcs}" nodeset="{ns}" complete_nodeset="{ns}" gp_index="{g()}"/>')
        w(3, '</object>')
    w(3, f'<object type="Bridge" gp_index="{g()}" bridge_type="0-1" depth="0" bridge_pci="0000:[{L["hb"][0]}-{L["hb"][1]}]">')
    bridge(4, L["sw"][0], L["sw"][1], L["sw"][2], "97a0", 1)  # PCIe switch upstream port
    bridge(5, L["pa"][0], L["pa"][1], L["pa"][1], "97a0", 2)
    gpu(6, L["ga"])
    w(5, '</object>')
    bridge(5, L["pn"][0], L["pn"][1], L["pn"][1], "97a0", 2)
    nic(6, L["nc"], L["osd"])
    w(5, '</object>')
    w(4, '</object>')
    w(3, '</object>')
    w(3, f'<object type="Bridge" gp_index="{g()}" bridge_type="0-1" depth="0" bridge_pci="0000:[{L["hb2"][0]}-{L["hb2"][1]}]">')
    bridge(4, L["rp"][0], L["rp"][1], L["rp"][1], "2030", 1)  # CPU root port
    gpu(5, L["gb"])
    w(4, '</object>')
    w(3, '</object>')
    w(2, '</object>')
w(1, '</object>')
w(0, '</topology>')
print("\n".join(out))
