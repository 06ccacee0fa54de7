from django.urls import path

from opportunities.views import board, live

urlpatterns = [
    path("pipelines/<int:pipeline_id>/board/", board.board, name="board"),
    path("pipelines/<int:pipeline_id>/board/version/", live.board_version, name="board_version"),
    path(
        "pipelines/<int:pipeline_id>/board/stages/<int:stage_id>/cards/",
        board.column_more,
        name="column_more",
    ),
    path("opportunities/<int:pk>/move/", board.move, name="move"),
    path("opportunities/<int:pk>/status/", board.set_status, name="status"),
    path("opportunities/<int:pk>/lost/", board.lost_form, name="lost_form"),
    path("opportunities/<int:pk>/card/", board.card, name="card"),
    path("opportunities/<int:pk>/menu/", board.card_menu, name="card_menu"),
    path(
        "opportunities/<int:pk>/menu/pipeline/",
        board.card_pipeline_move,
        name="card_pipeline_move",
    ),
]
