"""gRPC `pricing.v1.PricingService`: the reads of REST plans, prices and pricing zones, from the
same selectors, validated and rendered by the same serializers."""

from jia_payments.core.grpc.calls import PUBLIC, rpc
from jia_payments.core.grpc.messages import page, to_dict, to_message, to_messages
from jia_payments.core.grpc.server import Service
from jia_payments.protos.pricing.v1 import pricing_pb2 as pb
from jia_payments.protos.pricing.v1 import pricing_pb2_grpc
from pricing import selectors
from pricing.api import PlanSerializer, PriceQuery, PriceSerializer, PricingZoneQuery, PricingZoneSerializer


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PricingServicer(pricing_pb2_grpc.PricingServiceServicer):
    @rpc(permission=PUBLIC)
    def ListPlans(self, request, call):
        plans, total = page(selectors.active_plans(), limit=request.limit, offset=request.offset)
        return pb.ListPlansResponse(
            plans=to_messages(pb.Plan, PlanSerializer(plans, many=True).data), total=total
        )

    @rpc(permission=PUBLIC)
    def GetPrices(self, request, call):
        quotes = selectors.plan_prices(**_valid(PriceQuery, to_dict(request)))
        return pb.GetPricesResponse(prices=to_messages(pb.Price, PriceSerializer(quotes, many=True).data))

    @rpc(permission=PUBLIC)
    def GetPricingZone(self, request, call):
        zone = selectors.pricing_zone_get(iso_code=request.iso_code)
        return pb.GetPricingZoneResponse(zone=to_message(pb.PricingZone, PricingZoneSerializer(zone).data))

    @rpc(permission=PUBLIC)
    def ListPricingZones(self, request, call):
        query = _valid(PricingZoneQuery, to_dict(request, exclude=("limit", "offset")))
        zones, total = page(selectors.pricing_zones(**query), limit=request.limit, offset=request.offset)
        return pb.ListPricingZonesResponse(
            zones=to_messages(pb.PricingZone, PricingZoneSerializer(zones, many=True).data), total=total
        )


SERVICES = [
    Service(
        name=pb.DESCRIPTOR.services_by_name["PricingService"].full_name,
        servicer=PricingServicer(),
        add=pricing_pb2_grpc.add_PricingServiceServicer_to_server,
    )
]
