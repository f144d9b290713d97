"""Every operation of Cisco's ControlCenterServices, ControlCenterServicesEx and RISService70 WSDLs,
called through zeep (strict) loaded with those WSDLs; each request and answer body validated against
the schema embedded in its WSDL. The default service list of CUCM and IM&P nodes, deployment."""

from __future__ import annotations

import time

import pytest
import zeep
from lxml import etree
from zeep.plugins import HistoryPlugin

from simulator.cluster.services import CATALOGUE
from simulator.runtime import SimulatedCluster

from .conftest import base_url, session, ssh_client, wait_for
from .test_soap import AST, CCS_PATH, RIS_PATH, check_bodies, service, wsdl_schema

SOAP_BODY = "{http://schemas.xmlsoap.org/soap/envelope/}"
CCS_EX_PATH = "/controlcenterservice2/services/ControlCenterServicesEx"
CCS_WSDL = "serviceability/ControlCenterServices.wsdl"
EX_WSDL = "serviceability/ControlCenterServicesEx.wsdl"
RIS_WSDL = "serviceability/RISService70.wsdl"
BINDINGS = {
    CCS_WSDL: (f"{AST}ControlCenterServicesBinding", CCS_PATH),
    EX_WSDL: (f"{AST}ControlCenterServicesExBinding", CCS_EX_PATH),
    RIS_WSDL: (f"{AST}RisBinding", RIS_PATH),
}


def wsdl_operations(schema_dir, wsdl) -> set[str]:
    root = etree.parse(str(schema_dir / wsdl)).getroot()
    return {op.get("name") for op in root.iter("{http://schemas.xmlsoap.org/wsdl/}operation")}


def output_elements(schema_dir, wsdl) -> dict[str, str]:
    """Operation name -> the qualified element of its output message, as the WSDL binds them."""
    w = "{http://schemas.xmlsoap.org/wsdl/}"
    root = etree.parse(str(schema_dir / wsdl)).getroot()
    parts = {m.get("name"): m.find(f"{w}part").get("element").split(":")[1] for m in root.iter(f"{w}message")}
    return {
        op.get("name"): AST + parts[op.find(f"{w}output").get("message").split(":")[1]]
        for op in root.find(f"{w}portType").iter(f"{w}operation")
    }


class Checked:
    """A zeep service whose every call has its request and answer validated against the WSDL."""

    def __init__(self, sim, schema_dir, wsdl, node="cucm-pub"):
        self.history = HistoryPlugin()
        binding, path = BINDINGS[wsdl]
        self.svc = service(sim, schema_dir, wsdl, binding, path, node=node, plugins=[self.history])
        self.schema = wsdl_schema(schema_dir / wsdl)
        self.called: set[str] = set()
        self.outputs = output_elements(schema_dir, wsdl)

    def __getattr__(self, name):
        op = getattr(self.svc, name)

        def call(*args, **kwargs):
            result = op(*args, **kwargs)
            check_bodies(self.schema, self.history)
            # zeep reads an answer by position: check it is the element the WSDL names as the output.
            answer = self.history.last_received["envelope"].find(f"{SOAP_BODY}Body")[0]
            assert answer.tag == self.outputs[name], answer.tag
            self.called.add(name)
            return result

        return call


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, schema_dir):
    with SimulatedCluster(
        tmp_path_factory.mktemp("svc"),
        nodes=3,
        imp=1,
        phones=20,
        time_scale=1000,
        schema_dir=schema_dir,
        ris_rate_limit=10000,
        deactivated={"cucm-sub1": ["Cisco CTIManager"]},
    ) as sim:
        yield sim


def statuses(ccs, *names):
    ret = ccs.soapGetServiceStatus(ServiceStatus=list(names) or [""])
    return {i["ServiceName"]: i for i in ret["ServiceInfoList"]["item"]}


def test_every_ccs_operation_answers_schema_valid(cluster, schema_dir):
    ccs = Checked(cluster, schema_dir, CCS_WSDL, "cucm-sub2")
    static = ccs.soapGetStaticServiceList(ServiceInformationResponse="")
    specs = {s["ServiceName"]: s for s in static["item"]}
    assert specs["Cisco Tftp"]["Deployable"] is True and specs["Cisco Tftp"]["GroupName"] == "CM Services"
    assert specs["Cisco Tomcat"]["Deployable"] is False
    assert specs["Cisco CTIManager"]["DependentServices"]["Service"] == ["Cisco CallManager"]
    assert specs["Cisco AXL Web Service"]["ServiceType"] == "Servlet"
    assert "Cisco DRF Master" not in specs  # the publisher's only
    info = ccs.getProductInformationList(ServiceInfo="")
    assert info["ActiveServerVersion"] == cluster.cluster.version
    assert info["PrimaryNode"] == "cucm-pub.example.com"
    assert info["Products"]["item"][0]["ProductID"] == "CallManager"
    assert {s["ServiceName"] for s in info["Services"]["item"]} == set(specs)
    # NodeName is nillable: left out, it means the node called, as Cisco's own sample sends it.
    ret = ccs.soapDoControlServices(
        ControlServiceRequest={"ControlType": "Restart", "ServiceList": {"item": ["Cisco CallManager"]}}
    )
    assert ret["ReturnCode"]["_value_1"] == "Success"
    assert ret["ServiceInfoList"]["item"][0]["ServiceStatus"] in ("Stopping", "Starting")
    wait_for(
        lambda: statuses(ccs, "Cisco CallManager")["Cisco CallManager"]["ServiceStatus"] == "Started",
        what="CallManager started again",
    )
    ret = ccs.soapDoServiceDeployment(
        DeploymentServiceRequest={
            "NodeName": None,
            "DeployType": "Deploy",
            "ServiceList": {"item": ["Cisco DHCP Monitor Service"]},
        }
    )
    assert ret["ReturnCode"]["_value_1"] == "Success"
    assert ccs.called == wsdl_operations(schema_dir, CCS_WSDL)


def test_every_ccs_ex_operation_answers_schema_valid(cluster, schema_dir):
    ex = Checked(cluster, schema_dir, EX_WSDL, "cucm-pub")
    listing = ex.getStaticServiceListExtended(ServiceInformationResponse="")
    assert listing["PrimaryNode"] is True and listing["SecondaryNode"] is False
    specs = {s["ServiceName"]: s for s in listing["Services"]["item"]}
    assert specs["Cisco DRF Master"]["Restrict"] == "PrimaryNode"
    assert specs["Cisco Tomcat"]["Restrict"] == "DoNotStop"
    assert specs["Cisco DHCP Monitor Service"]["SetDefault"] == "no"
    files = ex.getFileDirectoryList(DirectoryPath="/usr/local/platform/.security/tomcat/keys")
    assert files == ["tomcat_priv.pem"]
    assert ex.getFileDirectoryList(DirectoryPath="/usr/local/platform/.security/tomcat/certs") == [
        "tomcat.pem",
        "tomcat.der",
    ]
    ret = ex.soapDoControlServicesEx(
        ControlServiceRequestEx={
            "ProductId": "CallManager",
            "DependencyType": "None",
            "ControlType": "Restart",
            "ServiceList": {"item": ["Cisco Tomcat"]},
        }
    )
    assert ret["ReturnCode"] == 1  # refused: Tomcat is not stoppable this way
    assert ret["ServiceInfoList"]["item"][0]["ServiceStatus"] == "Started"
    ret = ex.soapDoServiceDeploymentNoDbUpdate(
        DeploymentServiceRequestEx={
            "ProductId": "CallManager",
            "DeployType": "Deploy",
            "ServiceList": {"item": ["Cisco CTL Provider"]},
        }
    )
    assert ret["ReturnCode"] == 0
    assert ret["ServiceInfoList"]["item"][0]["ServiceStatus"] in ("Starting", "Started")
    assert ex.called == wsdl_operations(schema_dir, EX_WSDL)


def test_ex_operations_are_not_on_the_plain_service(cluster, schema_dir):
    s = session(cluster, "cucm-pub", "axl")
    body = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:soap="{AST[1:-1]}"><soapenv:Body><soap:getFileDirectoryList><soap:DirectoryPath>/'
        "</soap:DirectoryPath></soap:getFileDirectoryList></soapenv:Body></soapenv:Envelope>"
    )
    r = s.post(base_url(cluster, "cucm-pub") + CCS_PATH, data=body, headers={"SOAPAction": "x"})
    assert r.status_code == 500 and b"No such operation 'getFileDirectoryList'" in r.content


def test_every_ris_operation_answers_schema_valid(cluster, schema_dir):
    ris = Checked(cluster, schema_dir, RIS_WSDL)
    crit = {
        "MaxReturnedDevices": 10,
        "DeviceClass": "Any",
        "Model": 255,
        "Status": "Any",
        "NodeName": "",
        "SelectBy": "Name",
        "SelectItems": {"item": [{"Item": "*"}]},
        "Protocol": "Any",
        "DownloadStatus": "Any",
    }
    assert ris.selectCmDevice(StateInfo="", CmSelectionCriteria=crit)["SelectCmDeviceResult"][
        "TotalDevicesFound"
    ]
    ris.selectCmDeviceExt(StateInfo="", CmSelectionCriteria=crit)
    cti = ris.selectCtiItem(
        StateInfo="",
        CtiSelectionCriteria={
            "MaxReturnedItems": 100,
            "CtiMgrClass": "Provider",
            "Status": "Any",
            "NodeName": "",
            "SelectAppBy": "AppId",
            "AppItems": {"item": [{"AppItem": "*"}]},
        },
    )
    nodes = cti["SelectCtiItemResult"]["CtiNodes"]["item"]
    # CTIManager is deactivated on cucm-sub1 in this cluster: no CTI node entry for it.
    assert [n["Name"] for n in nodes] == ["cucm-pub.example.com", "cucm-sub2.example.com"]
    assert {n["ReturnCode"] for n in nodes} == {"NotFound"}
    bad = ris.selectCtiItem(
        StateInfo="", CtiSelectionCriteria={"CtiMgrClass": "Line", "NodeName": "nosuch.example.com"}
    )
    assert bad["SelectCtiItemResult"]["CtiNodes"]["item"][0]["ReturnCode"] == "InvalidNodeName"
    assert ris.called == wsdl_operations(schema_dir, RIS_WSDL)


def settled(ccs, deadline: float = 60.0):
    """Every service's status once none is Starting or Stopping: the tests before this one in the
    module share its cluster and restart services, which come back at the simulator's pace."""
    end = time.monotonic() + deadline
    while True:
        found = statuses(ccs)
        moving = [n for n, i in found.items() if i["ServiceStatus"] in ("Starting", "Stopping")]
        if not moving:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"services still moving after {deadline:.0f} s: {moving}")
        time.sleep(0.2)


def test_default_services_of_cucm_and_imp_nodes(cluster, schema_dir):
    pub = settled(Checked(cluster, schema_dir, CCS_WSDL, "cucm-pub"))
    sub2 = settled(Checked(cluster, schema_dir, CCS_WSDL, "cucm-sub2"))
    imp = settled(Checked(cluster, schema_dir, CCS_WSDL, "imp1"))
    for name in (
        "Cisco CDR Agent",
        "Cisco HAProxy",
        "Cisco RIS Data Collector",
        "Cisco Trust Verification Service",
    ):
        assert pub[name]["ServiceStatus"] == sub2[name]["ServiceStatus"] == "Started", name
    for name in (
        "Cisco DRF Master",
        "Cisco Certificate Authority Proxy Function",
        "Cisco Smart License Manager",
    ):
        assert name in pub and name not in sub2, name
    assert pub["Cisco AXL Web Service"]["ServiceStatus"] == "Started"
    off = sub2["Cisco AXL Web Service"]
    assert (off["ServiceStatus"], off["ReasonCode"], off["ReasonCodeString"]) == (
        "Stopped",
        -1068,
        "Service Not Activated",
    )
    # Cisco Tftp: activated on the publisher and the first subscriber only.
    assert pub["Cisco Tftp"]["ServiceStatus"] == "Started"
    assert sub2["Cisco Tftp"]["ReasonCodeString"] == "Service Not Activated"
    out_of_service = sub2["Cisco CAR Scheduler"]
    assert (out_of_service["ServiceStatus"], out_of_service["ReasonCode"]) == ("Stopped", -1069)
    assert out_of_service["ReasonCodeString"] == "Commanded Out of Service"
    assert "Cisco CallManager" not in imp
    for name in ("Cisco XCP Router", "Cisco XCP Connection Manager", "Cisco SIP Proxy", "Cisco DRF Local"):
        assert imp[name]["ServiceStatus"] == "Started", name
    assert imp["Cisco XCP Message Archiver"]["ReasonCodeString"] == "Service Not Activated"
    statuses_seen = {i["ServiceStatus"] for i in (*pub.values(), *sub2.values(), *imp.values())}
    assert statuses_seen <= {"Started", "Stopped"}
    assert len(pub) > 60 and len(imp) > 25
    unknown = statuses(Checked(cluster, schema_dir, CCS_WSDL), "No Such Service")["No Such Service"]
    assert (unknown["ServiceStatus"], unknown["ReasonCode"], unknown["ReasonCodeString"]) == (
        "Unknown",
        -1010,
        "No such service",
    )


def test_controlling_a_deactivated_service_fails_and_deploy_activates_it(cluster, schema_dir):
    ccs = Checked(cluster, schema_dir, CCS_WSDL, "cucm-sub1")
    request = {"NodeName": "cucm-sub1.example.com", "ServiceList": {"item": ["Cisco CTIManager"]}}
    ret = ccs.soapDoControlServices(ControlServiceRequest={**request, "ControlType": "Restart"})
    assert ret["ReturnCode"]["_value_1"] == "Rejected"
    item = ret["ServiceInfoList"]["item"][0]
    assert (item["ServiceStatus"], item["ReasonCode"]) == ("Stopped", -1068)
    client = ssh_client(cluster, "cucm-sub1")
    try:
        _, out, _ = client.exec_command("utils service list", timeout=30)
        listing = out.read().decode()
    finally:
        client.close()
    assert "Cisco CTIManager[STOPPED]  Service Not Activated" in listing
    ret = ccs.soapDoServiceDeployment(DeploymentServiceRequest={**request, "DeployType": "Deploy"})
    assert ret["ReturnCode"]["_value_1"] == "Success"
    wait_for(
        lambda: statuses(ccs, "Cisco CTIManager")["Cisco CTIManager"]["ServiceStatus"] == "Started",
        what="CTIManager activated and started",
    )
    ret = ccs.soapDoControlServices(ControlServiceRequest={**request, "ControlType": "Stop"})
    assert ret["ReturnCode"]["_value_1"] == "Success"
    wait_for(
        lambda: statuses(ccs, "Cisco CTIManager")["Cisco CTIManager"]["ReasonCode"] == -1069,
        what="CTIManager Commanded Out of Service",
    )
    ret = ccs.soapDoServiceDeployment(DeploymentServiceRequest={**request, "DeployType": "UnDeploy"})
    assert ret["ReturnCode"]["_value_1"] == "Success"
    assert statuses(ccs, "Cisco CTIManager")["Cisco CTIManager"]["ReasonCode"] == -1068
    # Network services cannot be deployed or undeployed.
    ret = ccs.soapDoServiceDeployment(
        DeploymentServiceRequest={
            "NodeName": None,
            "DeployType": "UnDeploy",
            "ServiceList": {"item": ["Cisco Tomcat"]},
        }
    )
    assert ret["ReturnCode"]["_value_1"] == "Rejected"
    assert ret["ServiceInfoList"]["item"][0]["ServiceStatus"] == "Started"
    with pytest.raises(zeep.exceptions.Fault, match="local node"):
        ccs.soapDoServiceDeployment(
            DeploymentServiceRequest={**request, "NodeName": "cucm-pub.example.com", "DeployType": "Deploy"}
        )


def test_deactivated_configuration_is_checked(tmp_path):
    with pytest.raises(ValueError, match="network services cannot be deactivated"):
        SimulatedCluster(tmp_path, nodes=1, deactivated={"cucm-pub": ["Cisco Tomcat"]})
    with pytest.raises(ValueError, match="no node named cucm-sub9"):
        SimulatedCluster(tmp_path, nodes=1, deactivated={"cucm-sub9": ["Cisco Tftp"]})
    with pytest.raises(ValueError, match="no such service"):
        SimulatedCluster(tmp_path, nodes=2, deactivated={"cucm-sub1": ["Cisco DRF Master"]})


def test_catalogue_names_are_unique():
    names = [s.name for s in CATALOGUE]
    assert len(names) == len(set(names))
